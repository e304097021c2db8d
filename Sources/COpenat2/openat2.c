#include "COpenat2.h"

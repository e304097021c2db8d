// LLVMFuzzerRunDriver itself comes from libFuzzer's runtime; include/CLibFuzzer.h declares it.
#include "CLibFuzzer.h"

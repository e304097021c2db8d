import COpenat2

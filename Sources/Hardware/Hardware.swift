import CLibPCI
import CLibUdev
import CLibBlkid

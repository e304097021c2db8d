import Proxy
import HostFS
import Hardware
print("deckhand")

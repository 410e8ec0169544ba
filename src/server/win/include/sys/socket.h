/* Windows build of the portico program: sys/socket.h is Winsock 2 (see ../posix.h). */
#include <winsock2.h>
#include <ws2tcpip.h>

/* Windows build of the portico program: arpa/inet.h is Winsock 2 (see ../posix.h). */
#include <winsock2.h>
#include <ws2tcpip.h>

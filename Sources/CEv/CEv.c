// _GNU_SOURCE only here: glibc hides accept4, pipe2, splice, recvmmsg, sendmmsg, the
// pktinfo structs, struct ucred and posix_spawn_file_actions_addclosefrom_np without it.
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "CEv.h"

_Static_assert(sizeof(struct cev_mmsghdr) == sizeof(struct mmsghdr), "cev_mmsghdr must be mmsghdr");

int cev_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return accept4(fd, addr, len, flags); }
int cev_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int cev_spawn_close_from(posix_spawn_file_actions_t *actions, int from) { return posix_spawn_file_actions_addclosefrom_np(actions, from); }
ssize_t cev_splice(int fd_in, int fd_out, size_t len, unsigned int flags) { return splice(fd_in, NULL, fd_out, NULL, len, flags); }
int cev_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
int cev_peer_credentials(int fd, pid_t *pid, uid_t *uid) {
    struct ucred credentials; socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid; *uid = credentials.uid; return 0;
}
const unsigned int CEV_SPLICE_F_MOVE = SPLICE_F_MOVE;
const unsigned int CEV_SPLICE_F_NONBLOCK = SPLICE_F_NONBLOCK;
const unsigned int CEV_SPLICE_F_MORE = SPLICE_F_MORE;
int cev_recvmmsg(int fd, struct cev_mmsghdr *messages, unsigned int count, int flags) { return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL); }
int cev_sendmmsg(int fd, struct cev_mmsghdr *messages, unsigned int count, int flags) { return sendmmsg(fd, (struct mmsghdr *)messages, count, flags); }
const int CEV_IP_PKTINFO = IP_PKTINFO;
const int CEV_IPV6_RECVPKTINFO = IPV6_RECVPKTINFO;
const int CEV_IPV6_PKTINFO = IPV6_PKTINFO;
size_t cev_in_pktinfo_size(void) { return sizeof(struct in_pktinfo); }
size_t cev_in6_pktinfo_size(void) { return sizeof(struct in6_pktinfo); }
struct in_addr cev_in_pktinfo_destination(const void *info) { return ((const struct in_pktinfo *)info)->ipi_addr; }
struct in6_addr cev_in6_pktinfo_destination(const void *info) { return ((const struct in6_pktinfo *)info)->ipi6_addr; }
void cev_in_pktinfo_set_source(void *info, struct in_addr source) { *(struct in_pktinfo *)info = (struct in_pktinfo){ .ipi_spec_dst = source }; }
void cev_in6_pktinfo_set_source(void *info, struct in6_addr source) { *(struct in6_pktinfo *)info = (struct in6_pktinfo){ .ipi6_addr = source }; }

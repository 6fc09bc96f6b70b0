// _GNU_SOURCE only here: glibc hides accept4, pipe2 and splice without it.
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "CEv.h"

int cev_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) { return accept4(fd, addr, len, flags); }
int cev_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
ssize_t cev_splice(int fd_in, int fd_out, size_t len, unsigned int flags) { return splice(fd_in, NULL, fd_out, NULL, len, flags); }
int cev_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
const unsigned int CEV_SPLICE_F_MOVE = SPLICE_F_MOVE;
const unsigned int CEV_SPLICE_F_NONBLOCK = SPLICE_F_NONBLOCK;
const unsigned int CEV_SPLICE_F_MORE = SPLICE_F_MORE;

#ifndef CEV_H
#define CEV_H

// The C bridge between Swift and libev / glibc. Each function here exists only
// because Swift cannot reach the thing it wraps (a macro, or a declaration that
// glibc hides without _GNU_SOURCE). No logic belongs in this target.

#define EV_COMPAT3 0
#include <ev.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <spawn.h>
// Glibc's Swift module leaves out epoll: including it here makes it importable (no wrapper).
#include <sys/epoll.h>

// libev's watcher initialisers are macros: Swift cannot call them.
static inline void cev_io_init(ev_io *w, void (*cb)(struct ev_loop *, ev_io *, int), int fd, int events) { ev_io_init(w, cb, fd, events); }
static inline void cev_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }
static inline void cev_timer_init(ev_timer *w, void (*cb)(struct ev_loop *, ev_timer *, int), double after, double repeat) { ev_timer_init(w, cb, after, repeat); }
static inline void cev_timer_set(ev_timer *w, double after, double repeat) { ev_timer_set(w, after, repeat); }
static inline void cev_signal_init(ev_signal *w, void (*cb)(struct ev_loop *, ev_signal *, int), int signum) { ev_signal_init(w, cb, signum); }
static inline void cev_child_init(ev_child *w, void (*cb)(struct ev_loop *, ev_child *, int), int pid, int trace) { ev_child_init(w, cb, pid, trace); }
static inline void cev_async_init(ev_async *w, void (*cb)(struct ev_loop *, ev_async *, int)) { ev_async_init(w, cb); }
static inline void cev_check_init(ev_check *w, void (*cb)(struct ev_loop *, ev_check *, int)) { ev_check_init(w, cb); }
static inline void cev_prepare_init(ev_prepare *w, void (*cb)(struct ev_loop *, ev_prepare *, int)) { ev_prepare_init(w, cb); }
static inline void cev_stat_init(ev_stat *w, void (*cb)(struct ev_loop *, ev_stat *, int), const char *path, double interval) { ev_stat_init(w, cb, path, interval); }
// ev_is_active / ev_timer_remaining's watcher argument is a macro-cast.
static inline int cev_is_active(void *w) { return ev_is_active((ev_watcher *)w); }
// EV_DEFAULT is a macro.
static inline struct ev_loop *cev_default_loop(void) { return ev_default_loop(EVFLAG_AUTO); }

// Hidden by glibc without _GNU_SOURCE; defined in CEv.c where _GNU_SOURCE is set
// (setting it here would break every Swift file that also imports Foundation).
int cev_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int cev_pipe2(int fds[2], int flags);
// posix_spawn_file_actions_addclosefrom_np likewise: a spawned process inherits nothing past stdio.
int cev_spawn_close_from(posix_spawn_file_actions_t *actions, int from);
ssize_t cev_splice(int fd_in, int fd_out, size_t len, unsigned int flags);
// F_SETPIPE_SZ is hidden without _GNU_SOURCE; returns the size set, or -1.
int cev_set_pipe_size(int fd, int size);
// recvmmsg/sendmmsg and struct mmsghdr are hidden without _GNU_SOURCE: the same struct
// under another name (same layout), and the calls in CEv.c.
struct cev_mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int cev_recvmmsg(int fd, struct cev_mmsghdr *messages, unsigned int count, int flags);
int cev_sendmmsg(int fd, struct cev_mmsghdr *messages, unsigned int count, int flags);
// The CMSG_* accessors of control messages are macros.
static inline struct cmsghdr *cev_cmsg_firsthdr(struct msghdr *m) { return CMSG_FIRSTHDR(m); }
static inline struct cmsghdr *cev_cmsg_nxthdr(struct msghdr *m, struct cmsghdr *c) { return CMSG_NXTHDR(m, c); }
static inline unsigned char *cev_cmsg_data(struct cmsghdr *c) { return CMSG_DATA(c); }
static inline size_t cev_cmsg_space(size_t length) { return CMSG_SPACE(length); }
static inline size_t cev_cmsg_len(size_t length) { return CMSG_LEN(length); }
// struct in_pktinfo and in6_pktinfo (the local address of a datagram, and the source to
// send a reply from) are hidden without _GNU_SOURCE: their fields, from CEv.c.
extern const int CEV_IP_PKTINFO;
extern const int CEV_IPV6_RECVPKTINFO;
extern const int CEV_IPV6_PKTINFO;
size_t cev_in_pktinfo_size(void);
size_t cev_in6_pktinfo_size(void);
struct in_addr cev_in_pktinfo_destination(const void *info);
struct in6_addr cev_in6_pktinfo_destination(const void *info);
void cev_in_pktinfo_set_source(void *info, struct in_addr source);
void cev_in6_pktinfo_set_source(void *info, struct in6_addr source);
// struct ucred (SO_PEERCRED) is hidden without _GNU_SOURCE: the peer's pid and uid, from
// CEv.c. Returns 0, or -1 with errno.
int cev_peer_credentials(int fd, pid_t *pid, uid_t *uid);
extern const unsigned int CEV_SPLICE_F_MOVE;
extern const unsigned int CEV_SPLICE_F_NONBLOCK;
extern const unsigned int CEV_SPLICE_F_MORE;

#endif

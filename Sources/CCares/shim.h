// Debian's libc-ares-dev: asynchronous DNS resolution, driven by the main event loop
// (see Discovery/DNSClient.swift).
#include <ares.h>

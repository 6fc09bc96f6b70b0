#ifndef CCURL_H
#define CCURL_H

// The C bridge to Debian's libcurl (libcurl4-openssl-dev), for the etcd client on the main
// event loop. curl's setopt and getinfo calls are variadic, which Swift cannot call: each
// function here is one typed form of them, and nothing else. No logic belongs here.

#include <curl/curl.h>

typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t count, void *context);

CURLcode ccurl_easy_setopt_long(CURL *easy, CURLoption option, long value);
CURLcode ccurl_easy_setopt_string(CURL *easy, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_pointer(CURL *easy, CURLoption option, void *value);
// For CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
CURLcode ccurl_easy_setopt_data_callback(CURL *easy, CURLoption option, ccurl_data_callback callback);
CURLcode ccurl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_pointer(CURL *easy, CURLINFO info, void **value);

CURLMcode ccurl_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value);
CURLMcode ccurl_multi_setopt_socket_callback(CURLM *multi, curl_socket_callback callback);
CURLMcode ccurl_multi_setopt_timer_callback(CURLM *multi, curl_multi_timer_callback callback);

#endif

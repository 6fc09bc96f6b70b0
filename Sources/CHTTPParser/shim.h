// Debian's libhttp-parser-dev (Node's former HTTP parser): parses the admin port's requests.
#include <http_parser.h>

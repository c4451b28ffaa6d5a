/*
 * The per-thread cache header, as an initial-exec thread-local.
 *
 * Rust's own thread-locals use the general-dynamic model in a shared object,
 * which costs a call to __tls_get_addr on every access. Declaring the
 * variable here with tls_model("initial-exec") lets src/cache.rs reach it
 * with one %fs-relative load. It is zero-initialised and has no destructor:
 * thread exit is handled with a pthread key (see src/cache.rs).
 */
#include "layout.h"

__attribute__((tls_model("initial-exec"), visibility("hidden"), aligned(8)))
__thread struct slitter_thread_state slitter_thread_state;

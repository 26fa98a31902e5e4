// hiredis 0.14 event hooks on the libuv loop, for connection.cpp: a hiredis
// async context's reads and writes driven by a uv_poll_t on its socket.
// Private to src/redis/.
//
// This replaces hiredis 0.14's adapters/libuv.h, which drops every poll
// callback whose status is not 0: libuv reports POLLERR (a refused connect, a
// reset connection) as status UV_EBADF with no events and stops the handle,
// so with that adapter hiredis never learns of the error and the connection
// hangs until a timeout.
#pragma once

#include <hiredis/async.h>
#include <uv.h>

namespace taba::redis {

// Attaches `ac` to `loop`; REDIS_ERR when it already has hooks or the poll
// handle cannot be made. hiredis calls the cleanup hook when it frees the
// context; the handle is closed and freed from there.
int uv_events_attach(redisAsyncContext* ac, uv_loop_t* loop);

}  // namespace taba::redis

// Closing a libuv handle that is owned by pointer: libuv may touch a handle
// until its close callback runs, so the memory is freed there and not at the
// uv_close() call. The timer, the deferred-work queue and the completion
// queue use it, as do the HTTP listener and rejected sockets. Loop thread only.
#pragma once

#include <uv.h>

namespace taba {

// Closes a handle allocated with `new Handle` and deletes it in its close
// callback.
template <class Handle>
void uv_close_and_delete(Handle* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<Handle*>(h); });
}

// Closes a handle embedded in an Owner allocated with `new Owner`, whose
// address is in handle->data, and deletes the Owner in the close callback.
template <class Owner, class Handle>
void uv_close_and_delete_owner(Handle* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete static_cast<Owner*>(h->data); });
}

}  // namespace taba

// hiredis 0.14 event hooks on a uv_poll_t. See uv_events.h.
#include "redis/uv_events.h"

namespace taba::redis {
namespace {

struct UvEvents {
  redisAsyncContext* context = nullptr;
  uv_poll_t handle;
  int events = 0;
};

void uv_events_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<UvEvents*>(handle->data);
  // On an error, let hiredis read/write what it waits for: it then finds the
  // socket error itself (getsockopt(SO_ERROR) while connecting, read/write after).
  int ready = status < 0 ? p->events : events;
  if (p->context && (ready & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context && (ready & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
  if (status < 0 && p->context && p->events) uv_poll_start(&p->handle, p->events, uv_events_poll);
}

void uv_events_update(UvEvents* p) {
  if (p->events) {
    uv_poll_start(&p->handle, p->events, uv_events_poll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void uv_events_add_read(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events |= UV_READABLE;
  uv_events_update(p);
}

void uv_events_del_read(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events &= ~UV_READABLE;
  uv_events_update(p);
}

void uv_events_add_write(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events |= UV_WRITABLE;
  uv_events_update(p);
}

void uv_events_del_write(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events &= ~UV_WRITABLE;
  uv_events_update(p);
}

void uv_events_cleanup(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->context = nullptr;  // the context is being freed; a poll callback may still be running
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
           [](uv_handle_t* h) { delete static_cast<UvEvents*>(h->data); });
}

}  // namespace

int uv_events_attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return REDIS_ERR;
  auto* p = new UvEvents;
  if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {  // fails before the handle is registered
    delete p;
    return REDIS_ERR;
  }
  p->handle.data = p;
  p->context = ac;
  ac->ev.addRead = uv_events_add_read;
  ac->ev.delRead = uv_events_del_read;
  ac->ev.addWrite = uv_events_add_write;
  ac->ev.delWrite = uv_events_del_write;
  ac->ev.cleanup = uv_events_cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}

}  // namespace taba::redis

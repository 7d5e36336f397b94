// C++20 coroutine tasks for the event loop.
//
// Task<T> is lazy: nothing runs until it is co_awaited (or handed to spawn()). When it
// finishes it transfers control straight back to its awaiter (symmetric transfer), so long
// chains of tasks that complete synchronously do not grow the stack.
//
// Tasks carry errors as values (T is usually Result<X> or Status). Exceptions are not part
// of the model: a promise that sees one terminates the process, so a throw is a bug that
// shows up at once instead of a silently lost connection.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <utility>

namespace ambit::io {

class EventLoop;

template <class T>
class Task;

namespace detail {

// Coroutine frames come from a small per-thread cache of recently freed frames (size classes
// of 256 bytes up to 16 KiB, at most 1 MiB per thread): a proxy allocates and frees several
// frames per request, and glibc's bins for blocks over 1 KiB consolidate on nearly every one.
// A frame freed on another thread simply joins that thread's cache. Off under ASan.
void* frame_alloc(size_t size);
void frame_free(void* p, size_t size) noexcept;

struct TaskPromiseBase {
  static void* operator new(size_t size) { return frame_alloc(size); }
  static void operator delete(void* p, size_t size) noexcept { frame_free(p, size); }

  // Who resumes when this task finishes; a task that nobody awaits has nothing to resume.
  std::coroutine_handle<> continuation = std::noop_coroutine();

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      return h.promise().continuation;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
};

}  // namespace detail

// A lazily started coroutine producing a T. Move-only; destroying an un-awaited Task frees
// its frame without running it.
template <class T>
class [[nodiscard]] Task {
 public:
  struct promise_type : detail::TaskPromiseBase {
    std::optional<T> value;
    Task get_return_object() noexcept {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    void return_value(T v) { value.emplace(std::move(v)); }
  };

  Task() = default;
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }

  auto operator co_await() && noexcept {
    struct Awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return !h || h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
      }
      T await_resume() { return std::move(*h.promise().value); }
    };
    return Awaiter{h_};
  }

 private:
  explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <>
class [[nodiscard]] Task<void> {
 public:
  struct promise_type : detail::TaskPromiseBase {
    Task get_return_object() noexcept {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    void return_void() const noexcept {}
  };

  Task() = default;
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }

  auto operator co_await() && noexcept {
    struct Awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return !h || h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
      }
      void await_resume() const noexcept {}
    };
    return Awaiter{h_};
  }

 private:
  explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

// Starts `task` now, on the calling thread, as a detached task owned by `loop`: it runs
// until its first suspension, later resumes from the loop's completions, and its frame is
// freed when it finishes. Call it on the loop's thread (or before run() starts). The loop
// counts live detached tasks (EventLoop::live_tasks()) so that shutdown can be verified.
void spawn(EventLoop& loop, Task<void> task);

}  // namespace ambit::io

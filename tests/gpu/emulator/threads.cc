/* The emulator's kernels: a launch runs its blocks one after another, and
 * a block's threads on workers, fibers with stacks of their own. A worker
 * runs threads of the block one after the other until one waits at a
 * barrier; the scheduler then starts the next thread on another worker,
 * and resumes waiting workers once their barrier is complete. A kernel
 * without barriers thus runs on one worker without a switch, and a block
 * that synchronises holds at most one worker per thread.
 *
 * A worker starts through ucontext and switches with _setjmp and
 * _longjmp, which leave the signal mask alone: swapcontext's system call
 * would otherwise be most of the time a kernel takes.
 *
 * Threads that have returned count as arrived at every barrier, as they
 * do on the hardware; a barrier that can never complete (a warp split
 * between __syncthreads and __syncwarp) stops the run with the threads
 * that wait. So do a fault inside a kernel, a shuffle from a lane that
 * has returned or does not exist, and a WMMA call the warp's lanes do not
 * make together. */
#undef _FORTIFY_SOURCE /* its longjmp check refuses a jump to another stack */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

#include "tests/gpu/emulator/cuda_emulator.h"
#include "tests/gpu/emulator/emulator.h"

namespace {

/* A worker's stack; the kernels keep WMMA tiles there, a KiB each. */
const size_t STACK_BYTES = 256 << 10;

enum worker_state { IDLE, RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER };

struct worker {
  ucontext_t start; /* until it first runs */
  bool started;
  jmp_buf context;
  void *stack;
  void *asan_fake_stack; /* AddressSanitizer's, while it is switched away */
  int thread;         /* the running thread's index in the block */
  unsigned exchanges; /* the shuffles it has made */
  emu_position where;
  worker_state state;
};

/* A barrier: how many threads have arrived, and the workers that wait. */
struct barrier {
  int arrived;
  std::vector<worker *> waiting;
};

struct warp_state {
  int lanes, done;
  barrier sync; /* __syncwarp's, and the shuffles' */
  bool lane_done[32];
  uint64_t slot[2][32];    /* by the shuffle's parity */
  unsigned written[2][32]; /* which shuffle of its lane each slot holds */
  const void *named[32];
};

struct block_run {
  const char *kernel;
  dim3 grid, dim;
  uint3 index;
  void (*body)(void *);
  void *args;
  int threads, started, done;
  bool reversed; /* threads start from the last */
  barrier sync;  /* __syncthreads's */
  std::vector<warp_state> warps;
  unsigned char *shared;
};

/* The one device's execution state. */
struct machine {
  std::vector<std::unique_ptr<worker>> workers;
  std::vector<worker *> idle;
  std::deque<worker *> ready; /* past a barrier, to be resumed in order */
  worker *current;            /* null while the scheduler runs */
  jmp_buf scheduler;
  const void *scheduler_stack; /* its bounds and fake stack, for AddressSanitizer */
  size_t scheduler_stack_size;
  void *scheduler_asan_fake_stack;
  block_run *running;
  unsigned char *shared_pages;        /* EMU_SHARED_OPTIN bytes, then a guard page */
  std::vector<const void *> poisoned; /* the running block's static shared arrays */
  emu_memory_image before, forward;   /* CUDA_EMULATOR_ORDER=both's */
  size_t shared_bytes;
  void *signal_stack;
};
machine the;

size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

void describe_position(char *buf, size_t size) {
  const block_run *b = the.running;
  if (!b) {
    snprintf(buf, size, "outside any kernel");
    return;
  }
  int n = snprintf(buf, size, "kernel %s, block (%u, %u, %u)", b->kernel, b->index.x, b->index.y, b->index.z);
  if (the.current && n >= 0 && (size_t)n < size)
    snprintf(buf + n, size - (size_t)n, ", thread (%u, %u, %u)", the.current->where.thread.x,
             the.current->where.thread.y, the.current->where.thread.z);
}

void on_fault(int sig, siginfo_t *info, void *) {
  if (!the.running) { /* not a kernel's fault: the default action */
    signal(sig, SIG_DFL);
    return;
  }
  char where[256], line[400];
  describe_position(where, sizeof where);
  int n = snprintf(line, sizeof line, "cuda emulator: %s: invalid memory access at %p%s\n", where, info->si_addr,
                   the.current ? " (out of bounds, or past the thread's stack)" : "");
  if (n > 0) (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  _exit(1);
}

void install_fault_handler(void) {
  if (the.signal_stack) return;
  the.signal_stack = malloc(SIGSTKSZ * 4);
  stack_t alt = {};
  alt.ss_sp = the.signal_stack;
  alt.ss_size = SIGSTKSZ * 4;
  sigaltstack(&alt, NULL);
  struct sigaction sa = {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
}

/* pages that fault on access below and above USABLE bytes */
unsigned char *guarded_pages(size_t usable) {
  size_t page = page_size(), bytes = (usable + page - 1) / page * page + 2 * page;
  unsigned char *p = (unsigned char *)mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    perror("cuda emulator: mmap");
    _exit(1);
  }
  if (mprotect(p + page, bytes - 2 * page, PROT_READ | PROT_WRITE) != 0) {
    perror("cuda emulator: mprotect");
    _exit(1);
  }
  return p + page;
}

emu_position position_of(const block_run *b, int t) {
  emu_position p;
  p.thread = make_uint3(t % b->dim.x, t / b->dim.x % b->dim.y, t / (b->dim.x * b->dim.y));
  p.block = b->index;
  p.block_dim = b->dim;
  p.grid_dim = b->grid;
  return p;
}

worker *running_worker(const char *what) {
  if (!the.current) emu_fail("%s called outside a kernel", what);
  return the.current;
}

/* AddressSanitizer knows one stack a thread: told of each switch, it
 * checks the workers' stacks as it does the scheduler's, instead of
 * taking them for overflows of it. */
void switching_stack(void **fake_stack, const void *to, size_t size) {
#ifdef __SANITIZE_ADDRESS__
  __sanitizer_start_switch_fiber(fake_stack, to, size);
#else
  (void)fake_stack, (void)to, (void)size;
#endif
}

void switched_stack(void *fake_stack, const void **from, size_t *size) {
#ifdef __SANITIZE_ADDRESS__
  __sanitizer_finish_switch_fiber(fake_stack, from, size);
#else
  (void)fake_stack, (void)from, (void)size;
#endif
}

/* back to the scheduler, until it resumes W */
void pause_worker(worker *w) {
  the.current = NULL;
  if (_setjmp(w->context) == 0) {
    switching_stack(&w->asan_fake_stack, the.scheduler_stack, the.scheduler_stack_size);
    _longjmp(the.scheduler, 1);
  }
  switched_stack(w->asan_fake_stack, &the.scheduler_stack, &the.scheduler_stack_size);
}

void resume_worker(worker *w) {
  the.current = w;
  if (_setjmp(the.scheduler) == 0) {
    switching_stack(&the.scheduler_asan_fake_stack, w->stack, STACK_BYTES);
    if (w->started) _longjmp(w->context, 1);
    w->started = true;
    setcontext(&w->start);
  }
  switched_stack(the.scheduler_asan_fake_stack, NULL, NULL);
  the.current = NULL;
}

/* the threads waiting at BAR may go on */
void release(barrier *bar) {
  for (worker *w : bar->waiting) {
    w->state = RUNNING;
    the.ready.push_back(w);
  }
  bar->waiting.clear();
  bar->arrived = 0;
}

/* W arrives at BAR, which the LIVE threads that have not returned must
 * reach: the last to arrive releases the others and goes on */
void arrive(worker *w, barrier *bar, int live, worker_state waiting_as) {
  if (++bar->arrived == live) {
    release(bar);
    return;
  }
  w->state = waiting_as;
  bar->waiting.push_back(w);
  pause_worker(w);
}

void thread_returned(block_run *b, worker *w) {
  warp_state *ws = &b->warps[w->thread / 32];
  b->done++;
  ws->done++;
  ws->lane_done[w->thread % 32] = true;
  if (b->sync.arrived > 0 && b->sync.arrived == b->threads - b->done) release(&b->sync);
  if (ws->sync.arrived > 0 && ws->sync.arrived == ws->lanes - ws->done) release(&ws->sync);
}

void worker_main(void) {
  switched_stack(NULL, &the.scheduler_stack, &the.scheduler_stack_size);
  worker *w = the.current;
  for (;;) {
    block_run *b = the.running;
    while (b->started < b->threads) {
      w->thread = b->reversed ? b->threads - 1 - b->started++ : b->started++;
      w->exchanges = 0;
      w->where = position_of(b, w->thread);
      w->state = RUNNING;
      b->body(b->args);
      thread_returned(b, w);
    }
    w->state = IDLE;
    the.idle.push_back(w);
    pause_worker(w);
  }
}

worker *new_worker(void) {
  worker *w = new worker();
  the.workers.emplace_back(w);
  w->stack = guarded_pages(STACK_BYTES);
  w->state = IDLE;
  getcontext(&w->start);
  w->start.uc_stack.ss_sp = w->stack;
  w->start.uc_stack.ss_size = STACK_BYTES;
  w->start.uc_link = NULL; /* worker_main never returns */
  makecontext(&w->start, worker_main, 0);
  return w;
}

[[noreturn]] void deadlock(block_run *b) {
  fprintf(stderr, "cuda emulator: kernel %s, block (%u, %u, %u): a barrier that cannot complete;", b->kernel,
          b->index.x, b->index.y, b->index.z);
  int shown = 0;
  for (const auto &w : the.workers) {
    if (w->state != AT_BLOCK_BARRIER && w->state != AT_WARP_BARRIER) continue;
    if (shown++ < 8)
      fprintf(stderr, "%s thread (%u, %u, %u) at %s", shown > 1 ? "," : "", w->where.thread.x, w->where.thread.y,
              w->where.thread.z, w->state == AT_BLOCK_BARRIER ? "__syncthreads" : "a warp barrier");
  }
  fprintf(stderr, "%s\n", shown > 8 ? ", ..." : "");
  fflush(NULL);
  _exit(1);
}

void run_block(block_run *b) {
  b->started = b->done = 0;
  b->sync = barrier();
  b->warps.assign((size_t)(b->threads + 31) / 32, warp_state());
  for (size_t i = 0; i < b->warps.size(); i++) b->warps[i].lanes = min(32, b->threads - 32 * (int)i);
  /* shared memory starts out garbage: NaN in every float and bf16 */
  memset(b->shared, 0xff, the.shared_bytes);
  the.running = b;
  the.poisoned.clear();
  while (b->done < b->threads) {
    if (!the.ready.empty()) {
      worker *w = the.ready.front();
      the.ready.pop_front();
      resume_worker(w);
    } else if (b->started < b->threads) {
      /* a new thread only when every started one waits: each warp runs
       * as far as it can before the next starts, so a missing barrier
       * reads what the next warp has not yet written */
      worker *w = NULL;
      if (the.idle.empty()) {
        w = new_worker();
      } else {
        w = the.idle.back();
        the.idle.pop_back();
      }
      resume_worker(w);
    } else {
      deadlock(b);
    }
  }
  the.running = NULL;
}

/* CUDA_EMULATOR_ORDER: forward (the default) runs the blocks and each
 * block's threads from the first; reverse from the last, so that a
 * barrier missing between a later warp's (or lane's) write and an earlier
 * one's read shows too; both runs each launch both ways from the same
 * device memory and stops the run where the two differ, which a kernel
 * free of races never does. (What is compared is the allocations the
 * kernel's pointer arguments point into: all it can reach.) */
enum order { FORWARD, REVERSE, BOTH };

order launch_order(void) {
  const char *order = getenv("CUDA_EMULATOR_ORDER");
  if (!order || !*order || !strcmp(order, "forward")) return FORWARD;
  if (!strcmp(order, "reverse")) return REVERSE;
  if (!strcmp(order, "both")) return BOTH;
  fprintf(stderr, "cuda emulator: CUDA_EMULATOR_ORDER is '%s', not forward, reverse or both\n", order);
  _exit(2);
}

void run_grid(block_run *b, bool reversed) {
  dim3 g = b->grid;
  b->reversed = reversed;
  for (unsigned i = 0; i < g.x * g.y * g.z; i++) {
    unsigned k = reversed ? g.x * g.y * g.z - 1 - i : i;
    b->index = make_uint3(k % g.x, k / g.x % g.y, k / (g.x * g.y));
    run_block(b);
  }
}

bool valid_config(dim3 grid, dim3 block) {
  unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  return grid.x && grid.y && grid.z && grid.x <= 0x7fffffffu && grid.y <= EMU_MAX_GRID_YZ &&
         grid.z <= EMU_MAX_GRID_YZ && threads > 0 && threads <= EMU_MAX_THREADS && block.z <= EMU_MAX_BLOCK_Z;
}

void warp_barrier(worker *w) {
  warp_state *ws = &the.running->warps[w->thread / 32];
  arrive(w, &ws->sync, ws->lanes - ws->done, AT_WARP_BARRIER);
}

}  // namespace

const emu_position &emu_here(void) { return running_worker("threadIdx, blockIdx, blockDim or gridDim")->where; }

int emu_lane(void) { return running_worker("a warp intrinsic")->thread % 32; }

void *emu_dynamic_shared(void) {
  running_worker("extern __shared__");
  return the.running->shared;
}

void emu_shared_poison(void *p, size_t bytes) {
  running_worker("__shared__");
  for (const void *q : the.poisoned)
    if (q == p) return;
  the.poisoned.push_back(p);
  memset(p, 0xff, bytes);
}

void __syncthreads(void) {
  worker *w = running_worker("__syncthreads");
  block_run *b = the.running;
  arrive(w, &b->sync, b->threads - b->done, AT_BLOCK_BARRIER);
}

void __syncwarp(unsigned mask) {
  worker *w = running_worker("__syncwarp");
  if (mask != 0xffffffffu) emu_fail("__syncwarp(%#x): only whole warps are emulated", mask);
  warp_barrier(w);
}

void emu_warp_exchange(const void *mine, void *theirs, size_t size, int source) {
  worker *w = running_worker("a shuffle");
  warp_state *ws = &the.running->warps[w->thread / 32];
  /* Shuffles alternate between two sets of slots: no lane can write this
   * set again before every lane has arrived at the next shuffle, having
   * read this one, so one barrier a shuffle is enough. */
  unsigned n = ++w->exchanges, lane = w->thread % 32;
  uint64_t *slot = ws->slot[n % 2];
  unsigned *written = ws->written[n % 2];
  memcpy(&slot[lane], mine, size);
  written[lane] = n;
  warp_barrier(w);
  if (source < 0 || source >= ws->lanes || written[source] != n)
    emu_fail("shuffle from lane %d, which %s", source,
             source >= 0 && source < ws->lanes ? "has returned" : "the warp lacks");
  memcpy(theirs, &slot[source], size);
}

void emu_warp_uniform(const void *p, const char *what) {
  worker *w = running_worker(what);
  warp_state *ws = &the.running->warps[w->thread / 32];
  if (ws->lanes - ws->done != 32) emu_fail("%s with %d of the warp's 32 lanes", what, ws->lanes - ws->done);
  ws->named[w->thread % 32] = p;
  warp_barrier(w);
  for (int lane = 0; lane < 32; lane++)
    if (ws->named[lane] != p) emu_fail("%s: lane %d names %p, this lane %p", what, lane, ws->named[lane], p);
  warp_barrier(w);
}

namespace {
[[noreturn]] void stop(const char *where, const char *fmt, va_list ap) {
  fflush(stdout);
  fprintf(stderr, "cuda emulator: %s%s", where, *where ? ": " : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(NULL);
  _exit(1);
}
}  // namespace

void emu_fail(const char *fmt, ...) {
  char where[256] = "";
  if (the.running) describe_position(where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  stop(where, fmt, ap);
}

void emu_run(const char *name, dim3 grid, dim3 block, size_t shared, cudaStream_t, void (*body)(void *), void *args,
             const void *const *pointers, size_t count) {
  if (the.running) emu_fail("launch of %s from inside a kernel", name);
  if (!valid_config(grid, block)) {
    emu_set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (shared > emu_shared_limit(name)) {
    emu_set_last_error(cudaErrorInvalidValue);
    return;
  }
  install_fault_handler();
  if (!the.shared_pages) the.shared_pages = guarded_pages(EMU_SHARED_OPTIN);
  /* the block's shared memory ends at the guard page, 128-byte aligned */
  the.shared_bytes = (shared + 127) / 128 * 128;
  block_run b;
  b.kernel = name;
  b.grid = grid;
  b.dim = block;
  b.body = body;
  b.args = args;
  b.threads = (int)(block.x * block.y * block.z);
  b.shared =
      the.shared_pages + ((size_t)EMU_SHARED_OPTIN + page_size() - 1) / page_size() * page_size() - the.shared_bytes;
  order o = launch_order();
  if (o != BOTH) {
    run_grid(&b, o == REVERSE);
    return;
  }
  emu_memory_save(&the.before, pointers, count);
  run_grid(&b, false);
  emu_memory_save(&the.forward, pointers, count);
  emu_memory_restore(the.before);
  run_grid(&b, true);
  const void *allocation;
  size_t offset;
  if (emu_memory_differs(the.forward, &allocation, &offset))
    emu_fail("kernel %s writes what depends on the order its threads run in: byte %zu of the allocation at %p", name,
             offset, allocation);
}

/* The device side of CUDA for host compilers: included ahead of each of
 * gpu/'s .cu files (after tests/gpu/emulator/rewrite-launches has turned
 * their <<<...>>> launches into emu_launch calls), so that the CUDA
 * backend compiles with g++ and its kernels run on the CPU.
 *
 * Each block runs alone; each of its threads is a fiber, switched at
 * __syncthreads, __syncwarp, the shuffles and the WMMA calls, which are
 * barriers of the block or of the warp. __shared__ arrays are therefore
 * static. This is a test of the kernels' logic (indexing, barriers, warp
 * collectives, launch configurations, what memory they touch), not of
 * their speed or of races that need real concurrency. */
#ifndef TRAINPIPE_TESTS_GPU_CUDA_EMULATOR_H
#define TRAINPIPE_TESTS_GPU_CUDA_EMULATOR_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#ifdef __cplusplus

/* where the running thread is: threadIdx and the like */
struct emu_position {
  uint3 thread, block;
  dim3 block_dim, grid_dim;
};
const emu_position &emu_here(void);

#define threadIdx (emu_here().thread)
#define blockIdx (emu_here().block)
#define blockDim (emu_here().block_dim)
#define gridDim (emu_here().grid_dim)
static constexpr int warpSize = 32;

/* One block at a time, so a block's shared memory can be static. */
#undef __shared__
#define __shared__ static
/* The first thread of a block to declare the static shared array at P
 * fills it with 0xff (NaN), as the dynamic one is, so that what the block
 * reads before writing shows. */
void emu_shared_poison(void *p, size_t bytes);

/* the block's dynamic shared memory, as launched */
void *emu_dynamic_shared(void);

void __syncthreads(void);
void __syncwarp(unsigned mask = 0xffffffffu);

/* the running thread's lane in its warp */
int emu_lane(void);
/* Every lane of the warp puts SIZE bytes at MINE, waits for the others,
 * and gets lane SOURCE's bytes into THEIRS. */
void emu_warp_exchange(const void *mine, void *theirs, size_t size, int source);
/* Fails the run unless every live lane of the warp passes the same P:
 * the WMMA calls are collective. */
void emu_warp_uniform(const void *p, const char *what);
/* Fails the run with a message, after the kernel, the block and the
 * thread that were running if one was. */
[[noreturn]] void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

template <typename T>
static inline T __shfl_xor_sync(unsigned, T x, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
  (void)width;
  T got;
  emu_warp_exchange(&x, &got, sizeof x, emu_lane() ^ lane_mask);
  return got;
}

/* ------------------------------------------------------------------------
 * WMMA: every lane holds the whole tile, so the collective calls compute
 * it redundantly, after checking that all lanes name the same memory. */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct tile_shape;
template <int M, int N, int K>
struct tile_shape<matrix_a, M, N, K> {
  enum { rows = M, cols = K };
};
template <int M, int N, int K>
struct tile_shape<matrix_b, M, N, K> {
  enum { rows = K, cols = N };
};
template <int M, int N, int K>
struct tile_shape<accumulator, M, N, K> {
  enum { rows = M, cols = N };
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  enum { rows = tile_shape<Use, M, N, K>::rows, cols = tile_shape<Use, M, N, K>::cols };
  T at[rows][cols];
};

static inline float emu_widen(float x) { return x; }
static inline float emu_widen(__nv_bfloat16 x) { return __bfloat162float(x); }

/* the alignments the CUDA Programming Guide asks of load and store */
template <typename T>
static inline void emu_check_matrix(const void *p, unsigned ldm, const char *what) {
  emu_warp_uniform(p, what);
  if ((uintptr_t)p % 32) emu_fail("%s: pointer %p is not 256-bit aligned", what, p);
  if ((ldm * sizeof(T)) % 16) emu_fail("%s: ldm %u is not a multiple of 16 bytes", what, ldm);
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
static inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, T v) {
  emu_warp_uniform(nullptr, "wmma::fill_fragment");
  for (auto &row : f.at)
    for (auto &x : row) x = v;
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
static inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const T *p, unsigned ldm) {
  static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                "an A or B fragment has a layout");
  emu_check_matrix<T>(p, ldm, "wmma::load_matrix_sync");
  bool rows_first = std::is_same<Layout, row_major>::value;
  for (int r = 0; r < (int)f.rows; r++)
    for (int c = 0; c < (int)f.cols; c++) f.at[r][c] = rows_first ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}

template <int M, int N, int K>
static inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm,
                                    layout_t layout) {
  emu_check_matrix<float>(p, ldm, "wmma::load_matrix_sync");
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) f.at[r][c] = layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}

template <int M, int N, int K>
static inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm,
                                     layout_t layout) {
  emu_check_matrix<float>(p, ldm, "wmma::store_matrix_sync");
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++)
      (layout == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.at[r][c];
  /* every lane has stored the same tile before any lane reads it back */
  emu_warp_uniform(p, "wmma::store_matrix_sync");
}

/* D = A B + C, the products exact (bf16 times bf16 fits a float) and the
 * sums in fp32, as the tensor cores do them (in some order) */
template <int M, int N, int K, typename T, typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
                            const fragment<matrix_b, M, N, K, T, LB> &b,
                            const fragment<accumulator, M, N, K, float> &c) {
  emu_warp_uniform(nullptr, "wmma::mma_sync");
  fragment<accumulator, M, N, K, float> sum;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = c.at[i][j];
      for (int k = 0; k < K; k++) s += emu_widen(a.at[i][k]) * emu_widen(b.at[k][j]);
      sum.at[i][j] = s;
    }
  d = sum;
}
}  // namespace wmma
}  // namespace nvcuda

/* ------------------------------------------------------------------------
 * Launches: KERNEL<<<grid, block, shared, stream>>>(args) becomes
 * emu_launch("KERNEL", grid, block, shared, stream)(a lambda calling
 * KERNEL, args). */

/* Runs BODY (with ARGS) as the kernel NAME on every thread of the grid,
 * after the checks the driver makes; a launch error is kept for
 * cudaGetLastError, as on a device. POINTERS are the kernel's pointer
 * arguments, the memory it can reach. */
void emu_run(const char *name, dim3 grid, dim3 block, size_t shared, cudaStream_t stream, void (*body)(void *),
             void *args, const void *const *pointers, size_t count);
/* Fails the run unless P is null or points into memory from cudaMalloc. */
void emu_check_device_pointer(const void *p, const char *kernel, int index);
/* cudaFuncSetAttribute for the kernel NAME */
cudaError_t emu_set_attribute(const char *name, cudaFuncAttribute attribute, int value);

template <typename T>
static inline void emu_check_argument(const T &, const char *, int, const void **) {}
template <typename T>
static inline void emu_check_argument(T *const &p, const char *kernel, int index, const void **pointer) {
  emu_check_device_pointer((const void *)p, kernel, index);
  *pointer = (const void *)p;
}

struct emu_launcher {
  const char *name;
  dim3 grid, block;
  size_t shared;
  cudaStream_t stream;

  /* the arguments are copied once, as a launch copies them, and every
   * thread calls the kernel with those copies */
  template <typename Kernel, typename... A>
  void operator()(Kernel kernel, A &&...args) const {
    typedef std::tuple<typename std::decay<A>::type...> arguments;
    struct call {
      Kernel kernel;
      arguments args;
      static void run(void *self) {
        call *c = (call *)self;
        std::apply(c->kernel, c->args);
      }
    } c = {kernel, arguments(std::forward<A>(args)...)};
    const void *pointers[sizeof...(A) + 1] = {};
    check(c.args, pointers, std::index_sequence_for<A...>());
    emu_run(name, grid, block, shared, stream, call::run, &c, pointers, sizeof...(A));
  }

  template <typename Tuple, size_t... I>
  void check(const Tuple &args, const void **pointers, std::index_sequence<I...>) const {
    (emu_check_argument(std::get<I>(args), name, (int)I, &pointers[I]), ...);
  }
};

static inline emu_launcher emu_launch(const char *name, dim3 grid, dim3 block, size_t shared = 0,
                                      cudaStream_t stream = 0) {
  return emu_launcher{name, grid, block, shared, stream};
}

/* ------------------------------------------------------------------------
 * What nvcc gives device code and a host compiler lacks */
#define __launch_bounds__(...)

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

#endif /* __cplusplus */
#endif

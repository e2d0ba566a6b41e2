/* The CUDA build runs on a device: a kernel adds two vectors and the sum
 * comes back exact. Exits 77 (skipped) where no device is present. */
#include <stdio.h>

#include "gpu/device.h"

int main(void) {
  char info[256];
  cuda_describe(info, sizeof info);
  if (cuda_device_count() == 0) {
    printf("SKIP: %s\n", info);
    return 77;
  }
  printf("%s\n", info);
  enum { N = 100003 };
  static float a[N], b[N], sum[N];
  for (int i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)i;
  }
  int err = cuda_vector_add(a, b, sum, N);
  if (err != 0) {
    printf("FAIL: cuda_vector_add returned CUDA error %d\n", err);
    return 1;
  }
  for (int i = 0; i < N; i++) {
    if (sum[i] != a[i] + b[i]) {
      printf("FAIL: sum[%d] = %g, expected %g\n", i, sum[i], a[i] + b[i]);
      return 1;
    }
  }
  printf("PASS: %d sums exact\n", N);
  return 0;
}

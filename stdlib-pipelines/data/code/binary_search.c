#include <stddef.h>

/* Returns the index of key in the sorted array a of n ints, or -1. */
long binary_search(const int *a, size_t n, int key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2; /* no overflow, unlike (lo + hi) / 2 */
    if (a[mid] < key)
      lo = mid + 1;
    else if (a[mid] > key)
      hi = mid;
    else
      return (long)mid;
  }
  return -1;
}

/* The first index whose element is not less than key: where key would go. */
size_t lower_bound(const int *a, size_t n, int key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

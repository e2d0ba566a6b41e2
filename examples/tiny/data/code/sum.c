/* Adds the numbers given on the command line. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  double sum = 0;
  for (int i = 1; i < argc; i++) sum += strtod(argv[i], NULL);
  printf("%g\n", sum);
  return 0;
}

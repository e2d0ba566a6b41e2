#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Reverses s in place. */
void reverse(char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n / 2; i++) {
    char t = s[i];
    s[i] = s[n - 1 - i];
    s[n - 1 - i] = t;
  }
}

/* True when s reads the same backwards, ignoring case and non-letters. */
bool is_palindrome(const char *s) {
  const char *a = s, *b = s + strlen(s);
  while (a < b) {
    if (!isalpha((unsigned char)*a)) { a++; continue; }
    if (!isalpha((unsigned char)b[-1])) { b--; continue; }
    if (tolower((unsigned char)*a) != tolower((unsigned char)b[-1]))
      return false;
    a++;
    b--;
  }
  return true;
}

/* Removes leading and trailing white space; returns s. */
char *trim(char *s) {
  char *start = s;
  while (isspace((unsigned char)*start))
    start++;
  size_t n = strlen(start);
  while (n > 0 && isspace((unsigned char)start[n - 1]))
    n--;
  memmove(s, start, n);
  s[n] = '\0';
  return s;
}

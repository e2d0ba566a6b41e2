#include "interp/explain.h"

#include <string.h>

/* Indexed by code; a code without an EXPLAIN entry is NULL. Two entries for
 * one code are caught by -Woverride-init (in -Wextra). */
static const char *const pages[DIAG_COUNT] = {
#define EXPLAIN(code, page) [code] = page,
#include "interp/explain.def"
#undef EXPLAIN
};

const char *explain_page(enum diag_code code) {
  if ((unsigned)code >= DIAG_COUNT) return NULL;
  return pages[code];
}

void explain_print(FILE *out, enum diag_code code) {
  if ((unsigned)code >= DIAG_COUNT) return;
  const struct diag_info *info = diag_info(code);
  fprintf(out, "%s (%s): %s \xE2\x80\x94 %s\n", info->code, severity_name(info->level), info->name, info->summary);
  const char *page = pages[code];
  if (!page) return;
  fputc('\n', out);
  fputs(page, out);
  size_t len = strlen(page);
  if (len == 0 || page[len - 1] != '\n') fputc('\n', out);
}

void explain_list(FILE *out) {
  int code_w = 0, level_w = 0, name_w = 0;
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    int n = (int)strlen(info->code);
    if (n > code_w) code_w = n;
    n = (int)strlen(severity_name(info->level));
    if (n > level_w) level_w = n;
    n = (int)strlen(info->name);
    if (n > name_w) name_w = n;
  }
  for (int i = 0; i < DIAG_COUNT; i++) {
    const struct diag_info *info = diag_info((enum diag_code)i);
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", code_w, info->code, level_w, severity_name(info->level), name_w,
            info->name, info->summary);
  }
}

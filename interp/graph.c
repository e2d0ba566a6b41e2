#include "interp/graph.h"

#include <stdlib.h>
#include <string.h>

#include "interp/decls.h"
#include "interp/symbols.h"

/* A DOT identifier or label: quoted, with quotes and backslashes escaped,
 * newlines as DOT's centred line break. */
static void dot_string(FILE *out, const char *text, size_t len) {
  fputc('"', out);
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '"' || text[i] == '\\') fputc('\\', out);
    if (text[i] == '\n') fputs("\\n", out);
    else fputc(text[i], out);
  }
  fputc('"', out);
}

static void dot_ident(FILE *out, const struct ident *name) { dot_string(out, name->text, name->len); }

/* The worst severity of the diagnostics inside ITEM's span, and their
 * messages joined for a tooltip. */
static int item_severity(const struct program *prog, const struct item *it, char *tip, size_t size) {
  int worst = -1;
  size_t used = 0;
  tip[0] = '\0';
  for (const struct diag *d = prog->diags.head; d; d = d->next) {
    if (d->span.file != it->span.file || d->span.start < it->span.start || d->span.end > it->span.end) continue;
    if ((int)d->severity > worst) worst = (int)d->severity;
    int n = snprintf(tip + used, size - used, "%s%s: %s", used ? "\n" : "", diag_info(d->code)->code, d->message);
    if (n > 0 && (size_t)n < size - used) used += (size_t)n;
  }
  return worst;
}

static void node_style(FILE *out, const struct program *prog, const struct item *it) {
  static const char *const colours[] = {[SEV_NOTE] = "#1f77b4", [SEV_WARNING] = "#ff7f0e", [SEV_ERROR] = "#d62728"};
  char tip[1024];
  int sev = item_severity(prog, it, tip, sizeof tip);
  if (sev < 0) return;
  fprintf(out, ", color=\"%s\", penwidth=2, tooltip=", colours[sev]);
  dot_string(out, tip, strlen(tip));
}

static void edge(FILE *out, const struct ident *from, const struct ident *to, const char *style) {
  fputs("  ", out);
  dot_ident(out, from);
  fputs(" -> ", out);
  dot_ident(out, to);
  fprintf(out, " [%s];\n", style);
}

/* The names a declaration refers to: its lineage, reference, reward, data
 * and mix members. */
static size_t references_of(const struct item *it, const struct ident **refs, size_t max) {
  size_t n = 0;
  if (it->kind == ITEM_STAGE && n < max) refs[n++] = &it->from;
  const struct expr *init = it->kind == ITEM_DATA ? it->init : NULL;
  if (init && init->kind == EXPR_CALL && ident_is(&init->u.call.callee, "mix"))
    for (const struct arg *a = init->u.call.args; a && n < max; a = a->next)
      if (a->name.text) refs[n++] = &a->name;
  if (it->kind != ITEM_STAGE) return n;
  for (const struct entry *e = it->block.entries; e && n < max; e = e->next) {
    const struct expr *v = e->value;
    if (v->kind == EXPR_NAME) refs[n++] = &v->u.name;
    else if (v->kind == EXPR_CALL && v->u.call.args && v->u.call.args->value->kind == EXPR_NAME &&
             ident_is(&v->u.call.callee, "frozen"))
      refs[n++] = &v->u.call.args->value->u.name;
    else if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix"))
      for (const struct arg *a = v->u.call.args; a && n < max; a = a->next)
        if (a->name.text) refs[n++] = &a->name;
  }
  return n;
}

/* What is drawn: the main file's declarations, and the imported ones they
 * depend on (an imported library of models does not fill the graph). The
 * drawn ones are marked `used`. */
static void mark_drawn(struct program *prog, struct symtab *names) {
  struct decl **work = NULL;
  size_t n = 0, cap = 0;
  for (struct item *it = prog->files[0]->items; it; it = it->next) {
    struct decl *d = it->name.text ? symtab_find(names, it->name.text, it->name.len) : NULL;
    if (!d || d->item != it || d->used) continue;
    d->used = true;
    work = xgrow(work, &cap, n + 1, sizeof *work);
    work[n++] = d;
  }
  while (n > 0) {
    const struct item *it = work[--n]->item;
    const struct ident *refs[64];
    size_t k = references_of(it, refs, 64);
    for (size_t i = 0; i < k; i++) {
      struct decl *d = symtab_find(names, refs[i]->text, refs[i]->len);
      if (!d || d->used) continue;
      d->used = true;
      work = xgrow(work, &cap, n + 1, sizeof *work);
      work[n++] = d;
    }
  }
  free(work);
}

static bool drawn(struct symtab *names, const struct ident *name) {
  struct decl *d = symtab_find(names, name->text, name->len);
  return d && d->used;
}

void graph_print_dot(FILE *out, struct program *prog) {
  struct symtab names;
  symtab_init(&names);
  for (size_t f = 0; f < prog->n_files; f++)
    for (struct item *it = prog->files[f]->items; it; it = it->next)
      if (it->kind == ITEM_MODEL || it->kind == ITEM_DATA || it->kind == ITEM_STAGE) symtab_add(&names, it);
  mark_drawn(prog, &names);

  const struct item *first = prog->files[0]->items;
  fputs("digraph ", out);
  if (first && first->kind == ITEM_PIPELINE) dot_ident(out, &first->name);
  else fputs("pipeline", out);
  fputs(" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n", out);

  for (size_t f = 0; f < prog->n_files; f++) {
    for (const struct item *it = prog->files[f]->items; it; it = it->next) {
      struct decl *d = it->name.text ? symtab_find(&names, it->name.text, it->name.len) : NULL;
      if (!d || d->item != it || !d->used) continue; /* a duplicate: the first one is drawn */
      fputs("  ", out);
      dot_ident(out, &it->name);
      if (it->kind == ITEM_MODEL) {
        fprintf(out, " [shape=ellipse, label=\"%.*s\\n%s\"", (int)it->name.len, it->name.text,
                state_name(model_initial_state(it)));
      } else if (it->kind == ITEM_DATA) {
        const struct ident *kind = it->init->kind == EXPR_CALL ? &it->init->u.call.callee : NULL;
        fprintf(out, " [shape=note, fontcolor=\"#555555\", color=\"#999999\", label=\"%.*s\\n%.*s\"", (int)it->name.len,
                it->name.text, kind ? (int)kind->len : 0, kind ? kind->text : "");
      } else {
        const struct stage_row *row = decl_stage_row(it);
        fprintf(out, " [shape=box, style=rounded, label=\"%.*s\\n%.*s → %s\"", (int)it->name.len, it->name.text,
                (int)it->kind_name.len, it->kind_name.text, row ? state_name(row->produces) : "?");
      }
      node_style(out, prog, it);
      fputs("];\n", out);
    }
  }

  for (size_t f = 0; f < prog->n_files; f++) {
    for (const struct item *it = prog->files[f]->items; it; it = it->next) {
      if (it->kind == ITEM_DATA && it->init->kind == EXPR_CALL && ident_is(&it->init->u.call.callee, "mix")) {
        for (const struct arg *a = it->init->u.call.args; a; a = a->next)
          if (a->name.text && drawn(&names, &a->name) && drawn(&names, &it->name)) {
            char style[96];
            const struct source *src = prog->sources.items[a->value->span.file];
            snprintf(style, sizeof style, "color=\"#999999\", label=\"%.*s\"", (int)(a->value->span.end - a->value->span.start),
                     src->text + a->value->span.start);
            edge(out, &a->name, &it->name, style);
          }
      }
      if (it->kind == ITEM_ORDER) {
        for (const struct name_list *a = it->order; a && a->next; a = a->next)
          if (drawn(&names, &a->name) && drawn(&names, &a->next->name))
            edge(out, &a->name, &a->next->name, "style=bold, color=\"#bbbbbb\", label=\"order\"");
      }
      if (it->kind != ITEM_STAGE || !drawn(&names, &it->name)) continue;
      if (drawn(&names, &it->from)) edge(out, &it->from, &it->name, "style=solid");
      for (const struct entry *e = it->block.entries; e; e = e->next) {
        const struct expr *v = e->value;
        if (ident_is(&e->key, "reference") && v->kind == EXPR_CALL && v->u.call.args &&
            v->u.call.args->value->kind == EXPR_NAME &&
            drawn(&names, &v->u.call.args->value->u.name))
          edge(out, &v->u.call.args->value->u.name, &it->name, "style=dashed, label=\"frozen\"");
        else if (ident_is(&e->key, "reward") && v->kind == EXPR_NAME && drawn(&names, &v->u.name))
          edge(out, &v->u.name, &it->name, "style=dotted, label=\"reward\"");
        else if (v->kind == EXPR_NAME && drawn(&names, &v->u.name) &&
                 symtab_find(&names, v->u.name.text, v->u.name.len)->item->kind == ITEM_DATA)
          edge(out, &v->u.name, &it->name, "color=\"#999999\", arrowsize=0.6");
        else if (v->kind == EXPR_CALL && ident_is(&v->u.call.callee, "mix"))
          for (const struct arg *a = v->u.call.args; a; a = a->next)
            if (a->name.text && drawn(&names, &a->name)) {
              char style[96];
              const struct source *src = prog->sources.items[a->value->span.file];
              snprintf(style, sizeof style, "color=\"#999999\", arrowsize=0.6, label=\"%.*s\"",
                       (int)(a->value->span.end - a->value->span.start), src->text + a->value->span.start);
              edge(out, &a->name, &it->name, style);
            }
      }
    }
  }
  fputs("}\n", out);
  symtab_free(&names);
}

#include "interp/cli.h"

#include <string.h>

#include "config.h"
#include "interp/check.h"
#include "interp/project.h"
#include "interp/explain.h"
#include "interp/explain_stages.h"
#include "interp/fmt.h"
#include "interp/atomic_write.h"
#include "interp/graph.h"
#include "interp/plan.h"
#include "interp/plan_file.h"
#include "runtime/checkpoint.h"
#include "runtime/runner.h"
#include "runtime/sample.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include "interp/render.h"
#include "interp/render_sarif.h"

#ifdef HAVE_CUDA
#include "gpu/cublas_library.h"
#include "gpu/device.h"
#endif

static const char usage_text[] =
    "usage: trainpipe <command> [options] [arguments]\n"
    "\n"
    "commands:\n"
    "  check FILE...    check pipelines and report every problem found\n"
    "  explain [CODE | STAGE-KIND | order]\n"
    "                   explain a diagnostic code, a stage kind or the ordering\n"
    "                   rules; without an argument, list them all\n"
    "  fmt FILE...      print pipelines in the one canonical layout (-w rewrites)\n"
    "  plan FILE        the stages in execution order, their settings and cost\n"
    "  graph FILE       the pipeline as a graphviz DOT graph\n"
    "  run FILE         train the stages for real, into a run folder\n"
    "  sample STAGE-DIR generate text from a trained stage\n"
    "  help [COMMAND]   show help for trainpipe or for a command\n"
    "  version          show the version and the backends built in (also\n"
    "                   trainpipe --version or -V)\n"
    "\n"
    "Run 'trainpipe help COMMAND' for the options of a command. 'man trainpipe',\n"
    "'man trainpipe.pipe' and 'man trainpipe-stages' describe the tool, the\n"
    "language and the stages.\n";

static const char check_usage[] =
    "usage: trainpipe check [options] FILE...\n"
    "\n"
    "Parses each pipeline with its imports, resolves names and validates every\n"
    "key and value, and reports what it finds.\n"
    "\n"
    "options:\n"
    "  --format=FORMAT  text (default), gcc (file:line:col: severity: message [CODE]),\n"
    "                   json (one document for all files) or sarif (SARIF 2.1.0)\n"
    "  --color=WHEN     auto (default: on a terminal, unless NO_COLOR is set),\n"
    "                   always or never\n"
    "  --werror         exit 1 on warnings as well as errors\n"
    "  --no-data        do not read the data files\n"
    "  --no-config      ignore trainpipe.yaml (found from the FILE's folder\n"
    "                   upwards: per-code levels, werror)\n"
    "  -h, --help       show this help\n"
    "\n"
    "A FILE of '-' is read from standard input.\n"
    "\n"
    "exit status: 0 no errors, 1 errors (or warnings with --werror), 2 usage\n"
    "errors or a FILE that cannot be read as UTF-8 text (a bad import is an\n"
    "error of the importing file: 1).\n";

struct cli_check_options {
  enum render_format format;
  int color; /* -1 auto, 0 never, 1 always */
  bool werror;
  bool no_config;
  bool no_data;
};

/* Accepts "--name=value" and "--name value"; returns the value, NULL when
 * the argument is another option, and "" when the value is missing. */
static const char *option_value(const char *name, int argc, char **argv, int *i) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] != '\0') return NULL;
  return *i + 1 < argc ? argv[++*i] : "";
}

static int usage_error(FILE *err, const char *fmt, const char *arg) {
  fprintf(err, "trainpipe: ");
  fprintf(err, fmt, arg);
  fprintf(err, "\nTry 'trainpipe help' for usage.\n");
  return EXIT_USAGE;
}

static void print_summary(FILE *out, struct program *prog, const char *path) {
  size_t e = prog->diags.count[SEV_ERROR], w = prog->diags.count[SEV_WARNING], n = prog->diags.count[SEV_NOTE];
  if (!e && !w && !n) {
    fprintf(out, "%s: ok\n", path);
    return;
  }
  fprintf(out, "%s: %zu error%s, %zu warning%s", path, e, e == 1 ? "" : "s", w, w == 1 ? "" : "s");
  if (n) fprintf(out, ", %zu note%s", n, n == 1 ? "" : "s");
  fputc('\n', out);
}

static int cmd_check(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  struct cli_check_options opt = {.format = RENDER_TEXT, .color = -1};
  /* Options may come before or after the files; "--" ends them. */
  char **files = xmalloc((size_t)argc * sizeof *files);
  int n_files = 0;
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (options_done || a[0] != '-' || a[1] == '\0') { /* "-" is standard input */
      files[n_files++] = argv[i];
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(check_usage, out);
      free(files);
      return EXIT_CLEAN;
    } else if (strcmp(a, "--werror") == 0) {
      opt.werror = true;
    } else if (strcmp(a, "--no-config") == 0) {
      opt.no_config = true;
    } else if (strcmp(a, "--no-data") == 0) {
      opt.no_data = true;
    } else if ((v = option_value("--format", argc, argv, &i))) {
      if (!*v) return free(files), usage_error(err, "%s", "--format needs a value: text, gcc, json or sarif");
      if (strcmp(v, "text") == 0) opt.format = RENDER_TEXT;
      else if (strcmp(v, "gcc") == 0) opt.format = RENDER_GCC;
      else if (strcmp(v, "json") == 0) opt.format = RENDER_JSON;
      else if (strcmp(v, "sarif") == 0) opt.format = RENDER_SARIF;
      else return free(files), usage_error(err, "--format expects text, gcc, json or sarif, not '%s'", v);
    } else if ((v = option_value("--color", argc, argv, &i))) {
      if (!*v) return free(files), usage_error(err, "%s", "--color needs a value: auto, always or never");
      if (strcmp(v, "auto") == 0) opt.color = -1;
      else if (strcmp(v, "always") == 0) opt.color = 1;
      else if (strcmp(v, "never") == 0) opt.color = 0;
      else return free(files), usage_error(err, "--color expects auto, always or never, not '%s'", v);
    } else {
      return free(files), usage_error(err, "check: unknown option '%s'", a);
    }
  }
  if (n_files == 0) return free(files), usage_error(err, "%s", "check: no pipeline file given");

  bool color = opt.color == 1 || (opt.color == -1 && env->out_is_tty && !env->no_color);
  json_t *all = opt.format == RENDER_JSON || opt.format == RENDER_SARIF ? json_array() : NULL;
  int status = EXIT_CLEAN;
  for (int i = 0; i < n_files; i++) {
    struct program prog;
    program_init(&prog, env->stdlib_dir);
    program_load(&prog, files[i]);
    struct config cfg = {0};
    if (!prog.main_refused) {
      check_program(&prog, &(struct check_options){.data = !opt.no_data});
      if (!opt.no_config) config_load(&cfg, &prog, files[i]);
      config_apply(&cfg, &prog);
    }
    diag_sort(&prog.diags);

    switch (opt.format) {
    case RENDER_TEXT:
      render_text(out, &prog, color);
      print_summary(out, &prog, prog.sources.items[0]->path);
      break;
    case RENDER_GCC: render_gcc(out, &prog); break;
    case RENDER_JSON: render_json_append(all, &prog); break;
    case RENDER_SARIF: render_sarif_append(all, &prog); break;
    }

    int file_status = EXIT_CLEAN;
    if (prog.main_refused) file_status = EXIT_USAGE;
    else if (prog.diags.count[SEV_ERROR] || ((opt.werror || cfg.werror) && prog.diags.count[SEV_WARNING]))
      file_status = EXIT_FINDINGS;
    if (file_status > status) status = file_status;
    program_free(&prog);
  }
  free(files);
  if (all) {
    json_t *doc = opt.format == RENDER_SARIF ? render_sarif_document(all) : render_json_document(all);
    json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(doc);
  }
  if (fflush(out) != 0) {
    fprintf(err, "trainpipe: cannot write the report\n");
    return EXIT_USAGE;
  }
  return status;
}

/* Loads and checks FILE as `check` would, for the commands that act on a
 * checked pipeline; prints the diagnostics to ERR when there are any. */
static void load_checked(struct program *prog, const char *file, bool data, bool no_config, bool color, FILE *err,
                         const struct cli_env *env) {
  program_init(prog, env->stdlib_dir);
  program_load(prog, file);
  if (prog->main_refused) {
    render_text(err, prog, color);
    return;
  }
  struct config cfg = {0};
  check_program(prog, &(struct check_options){.data = data});
  if (!no_config) config_load(&cfg, prog, file);
  config_apply(&cfg, prog);
  diag_sort(&prog->diags);
  if (prog->diags.head) render_text(err, prog, color);
}

static const char plan_usage[] =
    "usage: trainpipe plan [options] FILE\n"
    "\n"
    "Checks the pipeline, then prints what it will do and what it will cost: the\n"
    "stages in execution order (lineage, references, rewards and order\n"
    "constraints respected), each with the model it starts from and its state,\n"
    "the state it produces, its data with shares, file sizes and example counts,\n"
    "its objective, every effective setting (marked default or derived where not\n"
    "given), tokens, parameters, FLOPs, peak memory and time on a device, and\n"
    "the Chinchilla ratio of pre-training stages; then the totals. Only the main\n"
    "file's stages and the imported stages they depend on are planned. A\n"
    "pipeline with errors is not planned.\n"
    "\n"
    "options:\n"
    "  --format=FORMAT     text (default), yaml or json\n"
    "  --device=NAME       the device the time is estimated for: cpu (default),\n"
    "                      a100, h100, h200 or l4; --device=list lists them\n"
    "  --utilization=U     share of the device's peak assumed, in (0, 1]\n"
    "                      (default: the device's, shown in the plan)\n"
    "  -o, --output=FILE   write the plan to FILE, atomically, as data: YAML when\n"
    "                      FILE ends in .yaml or .yml, else JSON (--format=yaml\n"
    "                      or json overrides)\n"
    "  --no-data           do not read the data files (no sizes or example counts)\n"
    "  --no-config         ignore trainpipe.yaml\n"
    "  --color=WHEN        colour diagnostics: auto (default), always or never\n"
    "  -h, --help          show this help\n"
    "\n"
    "A FILE of '-' is read from standard input; '--' ends the options.\n"
    "\n"
    "exit status: 0 planned, 1 the pipeline has errors, 2 usage errors, an\n"
    "unreadable FILE or an output that cannot be written.\n";

static const char graph_usage[] =
    "usage: trainpipe graph [options] FILE\n"
    "\n"
    "Checks the pipeline and prints it as a graphviz DOT graph: models, data sets\n"
    "and stages as nodes (a stage labelled with its kind and the state it\n"
    "produces), lineage edges solid, frozen references dashed, rewards dotted,\n"
    "data thin and grey, order constraints bold and grey. A node that a\n"
    "diagnostic points into is outlined red (error), orange (warning) or blue\n"
    "(note), with the messages as its tooltip; the graph is drawn even when the\n"
    "pipeline has errors. Render it with: trainpipe graph FILE | dot -Tsvg > g.svg\n"
    "\n"
    "options:\n"
    "  -o, --output=FILE   write the graph to FILE, atomically\n"
    "  --no-data           do not read the data files\n"
    "  --no-config         ignore trainpipe.yaml\n"
    "  -h, --help          show this help\n"
    "\n"
    "A FILE of '-' is read from standard input; '--' ends the options.\n"
    "\n"
    "exit status: 0 drawn, 2 usage errors, an unreadable FILE or an output that\n"
    "cannot be written.\n";

/* Output that goes to a file atomically, or to OUT: gathered in memory first. */
struct output {
  char *data;
  size_t len;
  FILE *stream;
};

static FILE *output_begin(struct output *o) {
  *o = (struct output){0};
  o->stream = open_memstream(&o->data, &o->len);
  return o->stream;
}

static int output_end(struct output *o, const char *path, FILE *out, FILE *err) {
  int status = EXIT_CLEAN;
  if (fclose(o->stream) != 0) {
    fprintf(err, "trainpipe: out of memory\n");
    status = EXIT_USAGE;
  } else if (path) {
    if (!atomic_write(path, o->data, o->len, 0644)) {
      fprintf(err, "trainpipe: cannot write %s: %s\n", path, strerror(errno));
      status = EXIT_USAGE;
    }
  } else if (fwrite(o->data, 1, o->len, out) != o->len || fflush(out) != 0) {
    fprintf(err, "trainpipe: cannot write the output\n");
    status = EXIT_USAGE;
  }
  free(o->data);
  return status;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

enum plan_format { PLAN_DEFAULT, PLAN_TEXT, PLAN_YAML, PLAN_JSON };

/* What the commands on one checked pipeline (plan, graph) share. */
struct one_file_options {
  const char *file, *output;
  bool no_data, no_config;
  int color; /* -1 auto, 0 never, 1 always */
};

/* Takes argv[*i] when it is one of the shared options or the file: 1; 0
 * when it is not; -1 after reporting a usage error. */
static int one_file_option(const char *cmd, int argc, char **argv, int *i, struct one_file_options *o, bool color,
                           FILE *err) {
  const char *a = argv[*i], *v;
  if (strcmp(a, "--") == 0 && *i + 1 < argc) { /* what follows is the file, even if it starts with '-' */
    a = argv[++*i];
    if (o->file) return usage_error(err, "%s: one pipeline at a time", cmd), -1;
    o->file = a;
  } else if (a[0] != '-' || a[1] == '\0') {
    if (o->file) return usage_error(err, "%s: one pipeline at a time", cmd), -1;
    o->file = a;
  } else if (strcmp(a, "--no-data") == 0) {
    o->no_data = true;
  } else if (strcmp(a, "--no-config") == 0) {
    o->no_config = true;
  } else if ((v = option_value("--output", argc, argv, i)) || (v = option_value("-o", argc, argv, i))) {
    if (!*v) return usage_error(err, "%s: --output needs a file name", cmd), -1;
    o->output = v;
  } else if (color && (v = option_value("--color", argc, argv, i))) {
    if (!*v) return usage_error(err, "%s", "--color needs a value: auto, always or never"), -1;
    if (strcmp(v, "auto") == 0) o->color = -1;
    else if (strcmp(v, "always") == 0) o->color = 1;
    else if (strcmp(v, "never") == 0) o->color = 0;
    else return usage_error(err, "--color expects auto, always or never, not '%s'", v), -1;
  } else {
    return 0;
  }
  return 1;
}

static int cmd_plan(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  struct one_file_options o = {.color = -1};
  const char *device = "cpu";
  enum plan_format format = PLAN_DEFAULT;
  double utilization = NAN;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int taken = one_file_option("plan", argc, argv, &i, &o, true, err);
    if (taken < 0) return EXIT_USAGE;
    if (taken) continue;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(plan_usage, out);
      return EXIT_CLEAN;
    } else if ((v = option_value("--format", argc, argv, &i))) {
      if (strcmp(v, "text") == 0) format = PLAN_TEXT;
      else if (strcmp(v, "yaml") == 0) format = PLAN_YAML;
      else if (strcmp(v, "json") == 0) format = PLAN_JSON;
      else return usage_error(err, "plan: --format expects text, yaml or json, not '%s'", v);
    } else if ((v = option_value("--device", argc, argv, &i))) {
      if (strcmp(v, "list") == 0) {
        device_list(out);
        return EXIT_CLEAN;
      }
      if (!device_find(v)) return usage_error(err, "plan: no device '%s'; --device=list lists them", v);
      device = v;
    } else if ((v = option_value("--utilization", argc, argv, &i))) {
      char *end;
      utilization = strtod(v, &end);
      if (!*v || *end || !(utilization > 0 && utilization <= 1))
        return usage_error(err, "plan: --utilization expects a number in (0, 1], not '%s'", v);
    } else {
      return usage_error(err, "plan: unknown option '%s'", a);
    }
  }
  const char *file = o.file, *output = o.output;
  if (!file) return usage_error(err, "%s", "plan: no pipeline file given");
  if (format == PLAN_DEFAULT) format = !output ? PLAN_TEXT : ends_with(output, ".yaml") || ends_with(output, ".yml") ? PLAN_YAML : PLAN_JSON;
  if (output && format == PLAN_TEXT) return usage_error(err, "%s", "plan: a plan file is yaml or json, not text");

  struct program prog;
  load_checked(&prog, file, !o.no_data, o.no_config, o.color == 1 || (o.color == -1 && env->err_is_tty && !env->no_color),
               err, env);
  int status = EXIT_CLEAN;
  if (prog.main_refused) {
    status = EXIT_USAGE;
  } else if (prog.diags.count[SEV_ERROR]) {
    fprintf(err, "trainpipe: %s has errors; nothing is planned\n", file);
    status = EXIT_FINDINGS;
  } else {
    json_t *plan = plan_build(&prog, &(struct plan_options){.device = device, .utilization = utilization, .data = !o.no_data});
    struct output sink;
    FILE *s = output_begin(&sink);
    if (!s) {
      fprintf(err, "trainpipe: out of memory\n");
      status = EXIT_USAGE;
    } else {
      if (format == PLAN_TEXT) plan_print_text(s, plan);
      else if (format == PLAN_YAML) plan_print_yaml(s, plan);
      else {
        json_dumpf(plan, s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', s);
      }
      status = output_end(&sink, output, out, err);
    }
    json_decref(plan);
  }
  program_free(&prog);
  return status;
}

static int cmd_graph(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  struct one_file_options o = {.color = -1};
  for (int i = 1; i < argc; i++) {
    int taken = one_file_option("graph", argc, argv, &i, &o, false, err);
    if (taken < 0) return EXIT_USAGE;
    if (taken) continue;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(graph_usage, out);
      return EXIT_CLEAN;
    }
    return usage_error(err, "graph: unknown option '%s'", argv[i]);
  }
  const char *file = o.file, *output = o.output;
  if (!file) return usage_error(err, "%s", "graph: no pipeline file given");
  struct program prog;
  FILE *quiet = fopen("/dev/null", "w"); /* the diagnostics go into the graph */
  load_checked(&prog, file, !o.no_data, o.no_config, false, quiet ? quiet : err, env);
  if (quiet) fclose(quiet);
  int status = EXIT_CLEAN;
  if (prog.main_refused) {
    render_text(err, &prog, false);
    status = EXIT_USAGE;
  } else {
    struct output sink;
    FILE *s = output_begin(&sink);
    if (!s) {
      fprintf(err, "trainpipe: out of memory\n");
      status = EXIT_USAGE;
    } else {
      graph_print_dot(s, &prog);
      status = output_end(&sink, output, out, err);
    }
  }
  program_free(&prog);
  return status;
}

static const char run_usage[] =
    "usage: trainpipe run [options] FILE\n"
    "\n"
    "Trains the stages of a pipeline for real, in plan order, into a run folder:\n"
    "OUT/STAGE/model.safetensors, checkpoint.json and summary.json when a stage\n"
    "is done, metrics.jsonl (one JSON object per logged step: the loss and the\n"
    "stage's metrics, held-out ones prefixed val_) and log.txt. An assert is\n"
    "checked when its stages finish; a failed one skips what depends on them.\n"
    "FILE is a\n"
    "pipeline, which is checked first and not run when it has errors, or a plan\n"
    "written by 'trainpipe plan -o FILE' (.json, .yaml or .yml), which is run\n"
    "exactly. Every stage kind runs, on the CPU or on a CUDA device.\n"
    "\n"
    "options:\n"
    "  --out=DIR           the run folder (default: runs/NAME, NAME the pipeline's)\n"
    "  --only=STAGE        run this stage alone (the stages it starts from must\n"
    "                      have run into the same folder)\n"
    "  --from=STAGE        run this stage and the ones after it\n"
    "  --until=STAGE       run the stages up to this one, and stop after it\n"
    "  --device=DEVICE     cpu, cuda, or auto (the default): cuda when this build\n"
    "                      has it and a device is present, else cpu\n"
    "  --precision=P       what the matmuls compute in: fp32, tf32 or bf16 (CUDA\n"
    "                      only), or auto (the default): bf16 on CUDA, fp32 on cpu\n"
    "  --threads=N         threads for the CPU backend (default: all cores)\n"
    "  --seed=N            replace every stage's seed\n"
    "  --steps=N           at most N optimiser steps a stage, for smoke runs\n"
    "  --resume            continue interrupted stages from their last checkpoint\n"
    "  --no-config         ignore trainpipe.yaml\n"
    "  -h, --help          show this help\n"
    "\n"
    "Ctrl-C saves a checkpoint and stops; 'trainpipe run --resume' continues the\n"
    "same trajectory.\n"
    "\n"
    "exit status: 0 trained (or stopped by Ctrl-C with a checkpoint saved), 1 the\n"
    "pipeline has errors or a stage failed, 2 usage errors or an unreadable FILE.\n";

static bool parse_count(const char *v, long min, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!*v || *end || errno || n < min) return false;
  *out = n;
  return true;
}

static int cmd_run(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  struct run_options ro = {
      .progress = err, .tty = env->err_is_tty, .interrupted = env->interrupted, .device = DEVICE_AUTO};
  const char *file = NULL;
  bool no_config = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    long n;
    if (strcmp(a, "--") == 0 && i + 1 < argc) { /* what follows is the file, even if it starts with '-' */
      if (file) return usage_error(err, "%s", "run: one pipeline at a time");
      file = argv[++i];
    } else if (a[0] != '-' || a[1] == '\0') {
      if (file) return usage_error(err, "%s", "run: one pipeline at a time");
      file = a;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(run_usage, out);
      return EXIT_CLEAN;
    } else if (strcmp(a, "--resume") == 0) {
      ro.resume = true;
    } else if (strcmp(a, "--no-config") == 0) {
      no_config = true;
    } else if ((v = option_value("--out", argc, argv, &i))) {
      if (!*v) return usage_error(err, "%s", "run: --out needs a folder");
      ro.out = v;
    } else if ((v = option_value("--only", argc, argv, &i))) {
      if (!*v) return usage_error(err, "%s", "run: --only needs a stage name");
      ro.only = v;
    } else if ((v = option_value("--from", argc, argv, &i))) {
      if (!*v) return usage_error(err, "%s", "run: --from needs a stage name");
      ro.from = v;
    } else if ((v = option_value("--until", argc, argv, &i))) {
      if (!*v) return usage_error(err, "%s", "run: --until needs a stage name");
      ro.until = v;
    } else if ((v = option_value("--device", argc, argv, &i))) {
      if (!backend_device_find(v, &ro.device))
        return usage_error(err, "run: no device '%s'; the devices are cpu, cuda and auto", v);
    } else if ((v = option_value("--precision", argc, argv, &i))) {
      if (!backend_precision_find(v, &ro.precision))
        return usage_error(err, "run: no precision '%s'; the precisions are auto, fp32, tf32 and bf16", v);
    } else if ((v = option_value("--threads", argc, argv, &i))) {
      if (!parse_count(v, 1, &n) || n > 4096) return usage_error(err, "run: --threads expects a count from 1, not '%s'", v);
      ro.threads = (int)n;
    } else if ((v = option_value("--seed", argc, argv, &i))) {
      if (!parse_count(v, 0, &n)) return usage_error(err, "run: --seed expects a whole number from 0, not '%s'", v);
      ro.has_seed = true;
      ro.seed = (uint64_t)n;
    } else if ((v = option_value("--steps", argc, argv, &i))) {
      if (!parse_count(v, 1, &n)) return usage_error(err, "run: --steps expects a count from 1, not '%s'", v);
      ro.max_steps = n;
    } else {
      return usage_error(err, "run: unknown option '%s'", a);
    }
  }
  if (!file) return usage_error(err, "%s", "run: no pipeline file given");
  if (ro.only && (ro.from || ro.until))
    return usage_error(err, "%s", "run: --only excludes --from and --until");

  json_t *plan = NULL;
  struct program prog;
  bool have_prog = false;
  if (plan_file_named(file)) {
    char why[512];
    plan = plan_file_read(file, why, sizeof why);
    if (!plan) {
      fprintf(err, "trainpipe: %s\n", why);
      return EXIT_USAGE;
    }
  } else {
    load_checked(&prog, file, true, no_config, env->err_is_tty && !env->no_color, err, env);
    have_prog = true;
    if (prog.main_refused) {
      program_free(&prog);
      return EXIT_USAGE;
    }
    if (prog.diags.count[SEV_ERROR]) {
      fprintf(err, "trainpipe: %s has errors; nothing is run\n", file);
      program_free(&prog);
      return EXIT_FINDINGS;
    }
    plan = plan_build(&prog, &(struct plan_options){.device = "cpu", .utilization = NAN, .data = true});
  }
  char out_dir[4096];
  if (!ro.out) {
    const char *name = json_string_value(json_object_get(plan, "pipeline"));
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    size_t len = name ? strlen(name) : strcspn(base, ".");
    snprintf(out_dir, sizeof out_dir, "runs/%.*s", (int)len, name ? name : base);
    ro.out = out_dir;
  }
  char reason[1024] = "";
  bool interrupted = false;
  bool ok = run_plan(plan, &ro, &interrupted, reason, sizeof reason);
  json_decref(plan);
  if (have_prog) program_free(&prog);
  if (!ok) {
    fprintf(err, "trainpipe: %s\n", reason);
    return EXIT_FINDINGS;
  }
  fprintf(out, interrupted ? "stopped; the run is in %s (continue with --resume)\n" : "done; the run is in %s\n", ro.out);
  return EXIT_CLEAN;
}

static const char sample_usage[] =
    "usage: trainpipe sample [options] STAGE-DIR --prompt TEXT\n"
    "\n"
    "Generates text from a trained stage, the folder 'trainpipe run' wrote for\n"
    "it (runs/NAME/STAGE), so that a person can see what the stage did: a\n"
    "pre-trained model continues the prompt, one tuned on demonstrations\n"
    "answers it. The text is written once it is complete.\n"
    "\n"
    "options:\n"
    "  --prompt=TEXT       the text to continue, or with --chat to answer\n"
    "  --chat              lay the prompt out as a user turn of the stage's chat\n"
    "                      template; the answer ends at its end-of-turn token\n"
    "  --temperature=T     0 for the likeliest token each time; higher is more\n"
    "                      varied (default 0.8)\n"
    "  --top-k=K           draw from the K likeliest tokens only (default: all)\n"
    "  --top-p=P           draw from the fewest likeliest tokens whose probabilities\n"
    "                      add up to P, above 0 and at most 1 (default 1: all)\n"
    "  --max-tokens=N      at most N tokens (default 200)\n"
    "  --seed=N            the draws' seed (default 0): the same seed, device,\n"
    "                      precision and --threads, the same text\n"
    "  --device=DEVICE     cpu, cuda, or auto (the default): cuda when this build\n"
    "                      has it and a device is present, else cpu\n"
    "  --precision=P       fp32, tf32 or bf16 (CUDA only), or auto (the default):\n"
    "                      bf16 on CUDA, fp32 on cpu\n"
    "  --threads=N         threads for the CPU backend\n"
    "  -h, --help          show this help\n"
    "\n"
    "exit status: 0 generated, 1 the stage's checkpoint cannot be used, 2 usage\n"
    "errors.\n";

static bool parse_real(const char *v, double min, double max, double *out) {
  char *end;
  double d = strtod(v, &end);
  if (!*v || *end || !(d >= min && d <= max)) return false;
  *out = d;
  return true;
}

static int cmd_sample(int argc, char **argv, FILE *out, FILE *err) {
  const char *dir = NULL, *prompt = NULL;
  struct sample_options so = {.temperature = 0.8, .top_p = 1.0, .max_tokens = 200};
  int threads = 0;
  enum backend_device device = DEVICE_AUTO;
  enum backend_precision precision = PRECISION_AUTO;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    long n;
    if (a[0] != '-' || a[1] == '\0') {
      if (dir) return usage_error(err, "%s", "sample: one stage folder at a time");
      dir = a;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(sample_usage, out);
      return EXIT_CLEAN;
    } else if (strcmp(a, "--chat") == 0) {
      so.chat = true;
    } else if ((v = option_value("--prompt", argc, argv, &i))) {
      if (!*v) return usage_error(err, "%s", "sample: --prompt needs a text");
      prompt = v;
    } else if ((v = option_value("--temperature", argc, argv, &i))) {
      if (!parse_real(v, 0, 100, &so.temperature))
        return usage_error(err, "sample: --temperature expects a number from 0 to 100, not '%s'", v);
    } else if ((v = option_value("--top-k", argc, argv, &i))) {
      if (!parse_count(v, 0, &n) || n > 10000000) return usage_error(err, "sample: --top-k expects a count, not '%s'", v);
      so.top_k = (int)n;
    } else if ((v = option_value("--top-p", argc, argv, &i))) {
      if (!parse_real(v, 0, 1, &so.top_p) || so.top_p == 0)
        return usage_error(err, "sample: --top-p expects a number above 0, up to 1, not '%s'", v);
    } else if ((v = option_value("--max-tokens", argc, argv, &i))) {
      if (!parse_count(v, 1, &n) || n > 1000000)
        return usage_error(err, "sample: --max-tokens expects a count from 1, not '%s'", v);
      so.max_tokens = (int)n;
    } else if ((v = option_value("--seed", argc, argv, &i))) {
      if (!parse_count(v, 0, &n)) return usage_error(err, "sample: --seed expects a whole number from 0, not '%s'", v);
      so.seed = (uint64_t)n;
    } else if ((v = option_value("--device", argc, argv, &i))) {
      if (!backend_device_find(v, &device))
        return usage_error(err, "sample: no device '%s'; the devices are cpu, cuda and auto", v);
    } else if ((v = option_value("--precision", argc, argv, &i))) {
      if (!backend_precision_find(v, &precision))
        return usage_error(err, "sample: no precision '%s'; the precisions are auto, fp32, tf32 and bf16", v);
    } else if ((v = option_value("--threads", argc, argv, &i))) {
      if (!parse_count(v, 1, &n) || n > 4096) return usage_error(err, "sample: --threads expects a count from 1, not '%s'", v);
      threads = (int)n;
    } else {
      return usage_error(err, "sample: unknown option '%s'", a);
    }
  }
  if (!dir) return usage_error(err, "%s", "sample: no stage folder given (runs/NAME/STAGE)");
  if (!prompt) return usage_error(err, "%s", "sample: no --prompt given");
  char why[1024];
  struct checkpoint ck;
  if (!checkpoint_load(dir, &ck, false, why, sizeof why)) {
    fprintf(err, "trainpipe: %s\n", why);
    return EXIT_FINDINGS;
  }
  int status = EXIT_FINDINGS;
  struct tokenizer *tok = tokenizer_create(ck.tokenizer, why, sizeof why);
  enum chat_template template;
  struct backend *model = NULL;
  if (tok && template_find(ck.template, &template, why, sizeof why)) {
    /* one generation row: sample_text generates through the KV cache */
    model = backend_create(device,
                           &(struct backend_spec){.cfg = ck.cfg, .max_batch = 1, .max_seq = ck.cfg.context,
                                                  .threads = threads, .gen_rows = 1, .precision = precision},
                           why, sizeof why);
  }
  if (model) {
    model->ops->write_params(model, ck.params);
    if (sample_text(model, tok, template, prompt, &so, out, why, sizeof why)) status = EXIT_CLEAN;
    if (status == EXIT_CLEAN && (fflush(out) != 0 || ferror(out))) {
      fprintf(err, "trainpipe: cannot write the text\n");
      status = EXIT_USAGE;
    }
  }
  if (status != EXIT_CLEAN) fprintf(err, "trainpipe: %s: %s\n", dir, why);
  backend_destroy(model);
  tokenizer_free(tok);
  checkpoint_free(&ck);
  return status;
}

static int cmd_version(FILE *out) {
  fprintf(out, "trainpipe %s\n", PACKAGE_VERSION);
#ifdef HAVE_CUDA
  char info[256], blas[512];
  cuda_describe(info, sizeof info);
  if (cublas_library_load(blas, sizeof blas))
    fprintf(out, "backends: cpu, cuda (%s)\n", info);
  else
    fprintf(out, "backends: cpu, cuda (%s; %s)\n", info, blas);
#else
  fprintf(out, "backends: cpu\n");
#endif
  return EXIT_CLEAN;
}

static const char explain_usage[] =
    "usage: trainpipe explain [CODE | STAGE-KIND | order]\n"
    "\n"
    "Prints the page of a diagnostic code (E0402 or its short name,\n"
    "missing-reference): what the rule checks, why, and an example with its\n"
    "fix; or the page of a stage kind (pretrain, sft, dpo...): its goal, data,\n"
    "objective, what it teaches and cannot teach, its risks, and which stages\n"
    "come before and after it and why. 'explain order' prints the ordering\n"
    "rules as a table. Without an argument, lists every code and stage kind.\n";

static int cmd_explain(int argc, char **argv, FILE *out, FILE *err) {
  if (argc < 2) {
    explain_list(out);
    fputc('\n', out);
    explain_stages_list(out);
    return EXIT_CLEAN;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fputs(explain_usage, out);
    return EXIT_CLEAN;
  }
  if (argc > 2) return usage_error(err, "%s", "explain: one code or stage kind at a time");
  if (strcmp(argv[1], "order") == 0) {
    explain_order_print(out);
    return EXIT_CLEAN;
  }
  if (explain_stage_print(out, argv[1])) return EXIT_CLEAN;
  enum diag_code code;
  if (!diag_lookup(argv[1], strlen(argv[1]), &code))
    return usage_error(err, "explain: no diagnostic code or stage kind '%s'; 'trainpipe explain' lists them",
                       argv[1]);
  explain_print(out, code);
  return EXIT_CLEAN;
}

/* Every command, its help text and its entry point: `help` and the
 * dispatch below both read this table. */
struct command {
  const char *name;
  const char *usage;
  int (*main)(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env);
};

static int cmd_help(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env);

static int cmd_explain_entry(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  (void)env;
  return cmd_explain(argc, argv, out, err);
}

static int cmd_sample_entry(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  (void)env;
  return cmd_sample(argc, argv, out, err);
}

static int cmd_version_entry(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  (void)argc, (void)argv, (void)err, (void)env;
  return cmd_version(out);
}

static const struct command commands[] = {
    {"check", check_usage, cmd_check},     {"explain", explain_usage, cmd_explain_entry},
    {"fmt", fmt_usage, fmt_main},          {"plan", plan_usage, cmd_plan},
    {"graph", graph_usage, cmd_graph},     {"run", run_usage, cmd_run},
    {"sample", sample_usage, cmd_sample_entry}, {"help", usage_text, cmd_help},
    {"version", usage_text, cmd_version_entry},
};

static const struct command *command_find(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static int cmd_help(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  (void)env;
  if (argc < 2) {
    fputs(usage_text, out);
    return EXIT_CLEAN;
  }
  const struct command *c = command_find(argv[1]);
  if (!c) return usage_error(err, "help: unknown command '%s'", argv[1]);
  fputs(c->usage, out);
  return EXIT_CLEAN;
}

int cli_main(int argc, char **argv, FILE *out, FILE *err, const struct cli_env *env) {
  if (argc < 2) {
    fputs(usage_text, err);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) cmd = "help";
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) cmd = "version";
  const struct command *c = command_find(cmd);
  if (!c) return usage_error(err, "unknown command '%s'", cmd);
  if (c->main == cmd_help && cmd != argv[1]) return cmd_help(1, argv + 1, out, err, env); /* -h takes no topic */
  return c->main(argc - 1, argv + 1, out, err, env);
}

#include "interp/graph.h"

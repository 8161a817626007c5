#include "extensions.h"

#include <stdio.h>

int extensions_oneshot(const struct config *cfg)
{
    (void)cfg;
    fprintf(stderr, "extensions --wait: not implemented yet\n");
    return 1;
}

#include "leader.h"

#include <ev.h>
#include <stdlib.h>

struct leader_watch {
    struct ev_loop *loop;
    const struct config *cfg;
};

struct leader_watch *leader_watch_start(struct ev_loop *loop, const struct config *cfg)
{
    struct leader_watch *w = calloc(1, sizeof *w);
    if (w) {
        w->loop = loop;
        w->cfg = cfg;
    }
    return w;
}

void leader_watch_stop(struct leader_watch *w)
{
    free(w);
}

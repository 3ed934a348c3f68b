/* core.gather: a list of GETs on the multi driver, in one call. */
#ifndef SPOTIFY_GATHER_H
#define SPOTIFY_GATHER_H

#include "compat.h"

void spotify_open_gather(lua_State *L);

#endif

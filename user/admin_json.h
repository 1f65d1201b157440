/* SPDX-License-Identifier: MIT */
/* JSON of the daemons' runtime tables for the admin socket: the edge's routes
 * (`rsplice route list|add|del`) and the agent's services (`rsplice service
 * ...`), in the fields rsplice(8) documents. */
#ifndef RSPLICE_ADMIN_JSON_H
#define RSPLICE_ADMIN_JSON_H

#include <json-c/json.h>
#include <stdbool.h>

#include "config.h"

/* {"bind", "service", "allow": [CIDR...], "max_conns", "rules": ["MATCH>SERVICE"...]} */
json_object *aj_route(const struct rs_route *r);
/* {"name", "address", "proxy": "v2"|"none"} */
json_object *aj_service(const struct rs_service *s);
/* {"error": msg} */
json_object *aj_error(const char *msg);

/* A daemon's table requests: "WORD list", "WORD add ARG", "WORD del ARG"
 * (what `rsplice route|service` sends).  The answer of list() or change(),
 * an error naming usage for another WORD request, NULL when req is not a
 * WORD request at all. */
json_object *aj_table_request(const char *req, const char *word, json_object *(*list)(void),
			      json_object *(*change)(const char *arg, bool add),
			      const char *usage);

#endif

// SPDX-License-Identifier: MIT
/* JSON of routes and services for the admin socket (admin_json.h). */
#include "admin_json.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static json_object *aj_cidr(const struct rs_cidr *c)
{
	char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];

	if (!inet_ntop(c->family, c->addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(buf, sizeof(buf), "%s/%u", ip, c->prefix);
	return json_object_new_string(buf);
}

json_object *aj_route(const struct rs_route *r)
{
	json_object *o = json_object_new_object(), *allow = json_object_new_array();
	json_object *rules = json_object_new_array();
	char match[PR_NAME_MAX + 16], rule[sizeof(match) + PR_SERVICE_MAX + 2];

	json_object_object_add(o, "bind", json_object_new_string(r->bind.text));
	json_object_object_add(o, "service", json_object_new_string(r->service));
	for (int i = 0; i < r->n_allow; i++)
		json_object_array_add(allow, aj_cidr(&r->allow[i]));
	json_object_object_add(o, "allow", allow);
	json_object_object_add(o, "max_conns", json_object_new_uint64(r->max_conns));
	for (int i = 0; i < r->n_rules; i++) {
		pr_match_format(&r->rules[i], match, sizeof(match));
		snprintf(rule, sizeof(rule), "%s>%s", match, r->rules[i].service);
		json_object_array_add(rules, json_object_new_string(rule));
	}
	json_object_object_add(o, "rules", rules);
	return o;
}

json_object *aj_service(const struct rs_service *s)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "address", json_object_new_string(s->addr.text));
	json_object_object_add(o, "proxy",
			       json_object_new_string(s->proxy == RS_PROXY_V2 ? "v2" : "none"));
	return o;
}

json_object *aj_error(const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

json_object *aj_table_request(const char *req, const char *word, json_object *(*list)(void),
			      json_object *(*change)(const char *arg, bool add),
			      const char *usage)
{
	size_t n = strlen(word);

	if (strncmp(req, word, n) || (req[n] && req[n] != ' '))
		return NULL;
	req += n + strspn(req + n, " ");
	if (!strcmp(req, "list"))
		return list();
	if (!strncmp(req, "add ", 4) || !strncmp(req, "del ", 4))
		return change(req + 4 + strspn(req + 4, " "), req[0] == 'a');
	return aj_error(usage);
}

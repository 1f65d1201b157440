/* SPDX-License-Identifier: MIT */
/* Ed25519 key files, public keys, authorized-keys files and service sets.
 *
 * Private key file (written by `rsplice keygen FILE`, mode 0600):
 *   # rsplice ed25519 private key ...      comment lines
 *   <base64 of the 32-byte seed>
 * Public key file FILE.pub, one line, also a valid authorized-keys line:
 *   <base64 of the 32-byte public key> [comment]
 * Authorized keys (edge --authorized-keys), one key a line, '#' comments:
 *   [services=NAME[,NAME...]] [visit=NAME[,NAME...]] <base64 public key> [comment]
 * Without services= the key may serve every service, unless the line has
 * visit=: a visitor's key serves nothing unless services= says so.  visit=
 * lists the services the key may visit (edge_visit.h); without it, none.
 *
 * int functions return 0 or -errno and write a message (no "Error: ") into
 * err (RS_KEY_ERRLEN bytes). */
#ifndef RSPLICE_KEYS_H
#define RSPLICE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RS_KEY_ERRLEN 512
#define RS_SET_MAX 64 /* services named in one services= or --service-token */
#define RS_AUTHKEYS_MAX_BYTES (1 << 20)

struct rs_svc_set {
	bool all;
	int n;
	char names[RS_SET_MAX][64];
};

/* "a,b,c" (each a valid service name) into s (all = false). */
int rs_svc_set_parse(const char *list, size_t len, struct rs_svc_set *s, char *err);
bool rs_svc_set_has(const struct rs_svc_set *s, const char *name);

/* A base64 Ed25519 public key (exactly 32 bytes once decoded). */
int rs_pubkey_parse(const char *b64, size_t len, uint8_t pk[32]);
/* KEY (base64) or FILE (a .pub file: its first key line). */
int rs_pubkey_arg(const char *arg, uint8_t pk[32], char *err);

/* Loads a private key file; refuses one that group or others may access. */
int rs_key_load(const char *path, uint8_t sk[64], uint8_t pk[32], char *err);
/* Writes a new key pair to path (0600) and path.pub; an existing file is
 * replaced only when force. */
int rs_key_generate(const char *path, bool force, const char *comment, uint8_t pk_out[32],
		    char *err);

/* Looks pk up in an authorized-keys file, read afresh.  0 with *set (the
 * line's services=, or all) when listed, -ENOENT when not, other -errno when
 * the file cannot be used (err says why; *line the bad line or 0). */
int rs_authkeys_find(const char *path, const uint8_t pk[32], struct rs_svc_set *set,
		     int *line, char *err);
/* Like rs_authkeys_find, for a visitor: *visit is the line's visit= set
 * (empty without one). */
int rs_authkeys_find_visit(const char *path, const uint8_t pk[32], struct rs_svc_set *visit,
			   int *line, char *err);
/* Checks a whole authorized-keys file (at start-up): 0 or -errno with err. */
int rs_authkeys_check(const char *path, int *n_keys, char *err);

/* base64 of a public key into out (>= 45 bytes) */
void rs_pubkey_b64(const uint8_t pk[32], char *out, size_t size);

#endif

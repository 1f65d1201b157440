// SPDX-License-Identifier: MIT
/* Ed25519 key files and authorized keys (see keys.h).  Keys are libsodium's
 * crypto_sign (Ed25519); base64 is sodium_bin2base64 (original variant). */
#include "keys.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"

#define KEYFILE_MAX 4096

static int seterr(char *err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int seterr(char *err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, RS_KEY_ERRLEN, fmt, ap);
	va_end(ap);
	return rc;
}

int rs_svc_set_parse(const char *list, size_t len, struct rs_svc_set *s, char *err)
{
	size_t i = 0;

	memset(s, 0, sizeof(*s));
	while (i <= len) {
		size_t j = i;

		while (j < len && list[j] != ',')
			j++;
		if (!rs_name_ok(list + i, j - i))
			return seterr(err, -EINVAL, "invalid service name '%.*s' in list '%.*s'",
				      (int)(j - i), list + i, (int)len, list);
		if (s->n >= RS_SET_MAX)
			return seterr(err, -E2BIG, "more than %d services in one list", RS_SET_MAX);
		memcpy(s->names[s->n], list + i, j - i);
		s->names[s->n++][j - i] = '\0';
		i = j + 1;
	}
	return 0;
}

bool rs_svc_set_has(const struct rs_svc_set *s, const char *name)
{
	if (s->all)
		return true;
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], name))
			return true;
	return false;
}

int rs_pubkey_parse(const char *b64, size_t len, uint8_t pk[32])
{
	uint8_t buf[33];
	size_t n = 0;

	if (len > 64 || sodium_init() < 0)
		return -EINVAL;
	if (sodium_base642bin(buf, sizeof(buf), b64, len, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) || n != 32)
		return -EINVAL;
	memcpy(pk, buf, 32);
	return 0;
}

void rs_pubkey_b64(const uint8_t pk[32], char *out, size_t size)
{
	sodium_bin2base64(out, size, pk, 32, sodium_base64_VARIANT_ORIGINAL);
}

/* Whole small file into buf (NUL-terminated); st filled. */
static int read_small(const char *path, const char *what, char *buf, size_t cap,
		      struct stat *st, char *err)
{
	size_t n = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return seterr(err, -errno, "cannot open %s '%s': %s", what, path, strerror(errno));
	if (fstat(fd, st)) {
		rc = seterr(err, -errno, "cannot stat %s '%s': %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = seterr(err, -EINVAL, "%s '%s' is not a regular file", what, path);
		goto out;
	}
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = seterr(err, -errno, "cannot read %s '%s': %s", what, path,
				    strerror(errno));
			goto out;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	if (n >= cap) {
		rc = seterr(err, -EFBIG, "%s '%s' is larger than %zu bytes", what, path, cap - 1);
		goto out;
	}
	if (memchr(buf, '\0', n)) {
		rc = seterr(err, -EINVAL, "%s '%s' contains a NUL byte", what, path);
		goto out;
	}
	buf[n] = '\0';
out:
	close(fd);
	return rc;
}

/* next line of *p (without its newline, trailing blanks cut); NULL at the end */
static char *next_line(char **p)
{
	char *s = *p, *e;

	if (!*s)
		return NULL;
	e = strchr(s, '\n');
	if (e) {
		*e = '\0';
		*p = e + 1;
	} else {
		*p = s + strlen(s);
	}
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

int rs_key_load(const char *path, uint8_t sk[64], uint8_t pk[32], char *err)
{
	char buf[KEYFILE_MAX + 1], *p = buf, *l, *key = NULL;
	uint8_t seed[64];
	size_t n = 0;
	struct stat st;
	int rc;

	if (sodium_init() < 0)
		return seterr(err, -EIO, "libsodium failed to initialize");
	rc = read_small(path, "key file", buf, sizeof(buf), &st, err);
	if (rc)
		goto out;
	if (st.st_mode & 077) {
		rc = seterr(err, -EACCES,
			    "key file '%s' is accessible by group or others (mode %04o): chmod 600 '%s'",
			    path, (unsigned int)(st.st_mode & 07777), path);
		goto out;
	}
	while ((l = next_line(&p))) {
		if (!*l || *l == '#')
			continue;
		if (key) {
			rc = seterr(err, -EINVAL, "key file '%s' has more than one key line", path);
			goto out;
		}
		key = l;
	}
	if (!key || sodium_base642bin(seed, sizeof(seed), key, strlen(key), NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) || n != 32) {
		rc = seterr(err, -EINVAL,
			    "key file '%s' holds no private key (create one with: rsplice keygen FILE)",
			    path);
		goto out;
	}
	crypto_sign_seed_keypair(pk, sk, seed);
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

static int write_file(const char *path, bool force, const char *text, char *err)
{
	size_t len = strlen(text), off = 0;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL),
		  0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return seterr(err, -EEXIST, "'%s' exists; not overwriting it without --force",
				      path);
		return seterr(err, -errno, "cannot create '%s': %s", path, strerror(errno));
	}
	/* an existing file keeps its mode on O_TRUNC: make it private too */
	if (fchmod(fd, 0600)) {
		int e = errno;

		close(fd);
		return seterr(err, -e, "cannot chmod '%s': %s", path, strerror(e));
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;

			close(fd);
			return seterr(err, -e, "cannot write '%s': %s", path, strerror(e));
		}
		off += (size_t)w;
	}
	if (fsync(fd) || close(fd))
		return seterr(err, -errno, "cannot write '%s': %s", path, strerror(errno));
	return 0;
}

int rs_key_generate(const char *path, bool force, const char *comment, uint8_t pk_out[32],
		    char *err)
{
	uint8_t seed[32], pk[32], sk[64];
	char b64[64], text[512], pub[4096];
	int rc;

	if (sodium_init() < 0)
		return seterr(err, -EIO, "libsodium failed to initialize");
	if (snprintf(pub, sizeof(pub), "%s.pub", path) >= (int)sizeof(pub))
		return seterr(err, -ENAMETOOLONG, "path '%s' is too long", path);
	if (comment && (strpbrk(comment, "\n\r") || strlen(comment) > 128))
		return seterr(err, -EINVAL, "the comment must be one line of at most 128 bytes");
	if (!force && !access(pub, F_OK))
		return seterr(err, -EEXIST, "'%s' exists; not overwriting it without --force", pub);
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text),
		 "# rsplice ed25519 private key: keep it secret (mode 0600); public key in %s.pub\n"
		 "%s\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path, b64);
	rc = write_file(path, force, text, err);
	sodium_memzero(text, sizeof(text));
	sodium_memzero(b64, sizeof(b64));
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	if (rc)
		return rc;
	rs_pubkey_b64(pk, b64, sizeof(b64));
	snprintf(text, sizeof(text), "%s%s%s\n", b64, comment && *comment ? " " : "",
		 comment ? comment : "");
	rc = write_file(pub, force, text, err);
	if (!rc && pk_out)
		memcpy(pk_out, pk, 32);
	return rc;
}

int rs_pubkey_arg(const char *arg, uint8_t pk[32], char *err)
{
	char buf[KEYFILE_MAX + 1], *p = buf, *l;
	struct stat st;
	int rc;

	if (!rs_pubkey_parse(arg, strlen(arg), pk))
		return 0;
	rc = read_small(arg, "public key file", buf, sizeof(buf), &st, err);
	if (rc) {
		if (rc == -ENOENT)
			return seterr(err, -EINVAL,
				      "'%s' is neither a base64 public key nor a readable file", arg);
		return rc;
	}
	while ((l = next_line(&p))) {
		size_t n;

		if (!*l || *l == '#')
			continue;
		n = strcspn(l, " \t");
		if (!rs_pubkey_parse(l, n, pk))
			return 0;
		break;
	}
	return seterr(err, -EINVAL, "public key file '%s' holds no base64 Ed25519 public key", arg);
}

/* One option of an authorized-keys line, "NAME=LIST": when l starts with
 * it, *seen set and set filled, l moved past it and the blanks after it. */
static int authkeys_opt(char **l, const char *name, struct rs_svc_set *set, bool *seen,
			char *err)
{
	size_t k = strlen(name), n;
	int rc;

	if (strncmp(*l, name, k) || (*l)[k] != '=')
		return 0;
	if (*seen)
		return seterr(err, -EINVAL, "%s= given twice", name);
	*seen = true;
	*l += k + 1;
	n = strcspn(*l, " \t");
	rc = rs_svc_set_parse(*l, n, set, err);
	if (rc)
		return rc;
	*l += n;
	while (**l == ' ' || **l == '\t')
		(*l)++;
	return 1;
}

/* One authorized-keys line (not blank, not a comment): 0, or -EINVAL with err.
 * Options, in any order: services= (what it may serve; without it, every
 * service, unless visit= is given: a visitor's key serves nothing) and
 * visit= (what it may visit; without it, nothing). */
static int authkeys_line(char *l, uint8_t pk[32], struct rs_svc_set *set,
			 struct rs_svc_set *visit, char *err)
{
	bool has_services = false, has_visit = false;
	size_t n;
	int rc;

	memset(set, 0, sizeof(*set));
	memset(visit, 0, sizeof(*visit));
	do {
		rc = authkeys_opt(&l, "services", set, &has_services, err);
		if (!rc)
			rc = authkeys_opt(&l, "visit", visit, &has_visit, err);
		if (rc < 0)
			return rc;
	} while (rc);
	if (!has_services && !has_visit)
		set->all = true;
	n = strcspn(l, " \t");
	if (rs_pubkey_parse(l, n, pk))
		return seterr(err, -EINVAL, "'%.*s' is not a base64 Ed25519 public key",
			      (int)(n > 60 ? 60 : n), l);
	return 0;
}

static int authkeys_scan(const char *path, const uint8_t *want, struct rs_svc_set *found,
			 struct rs_svc_set *found_visit, int *line, int *n_keys, char *err)
{
	char *buf, *p, *l;
	struct rs_svc_set set, visit;
	uint8_t pk[32];
	struct stat st;
	int rc, no = 0, keys = 0;

	*line = 0;
	buf = malloc(RS_AUTHKEYS_MAX_BYTES + 1);
	if (!buf)
		return seterr(err, -ENOMEM, "out of memory");
	rc = read_small(path, "authorized-keys file", buf, RS_AUTHKEYS_MAX_BYTES + 1, &st, err);
	if (rc)
		goto out;
	/* like sshd's StrictModes: a list others may change is no access control */
	if (st.st_mode & 022) {
		rc = seterr(err, -EACCES,
			    "authorized-keys file '%s' is writable by group or others (mode %04o): "
			    "chmod 644 '%s'", path, (unsigned int)(st.st_mode & 07777), path);
		goto out;
	}
	rc = -ENOENT;
	p = buf;
	while ((l = next_line(&p))) {
		no++;
		if (!*l || *l == '#')
			continue;
		if (authkeys_line(l, pk, &set, &visit, err)) {
			char why[RS_KEY_ERRLEN];

			snprintf(why, sizeof(why), "%s", err);
			*line = no;
			rc = seterr(err, -EINVAL, "%s:%d: %s", path, no, why);
			goto out;
		}
		keys++;
		if (want && !sodium_memcmp(pk, want, 32)) {
			*found = set;
			if (found_visit)
				*found_visit = visit;
			*line = no;
			rc = 0;
			goto out;
		}
	}
	if (!want)
		rc = 0;
out:
	if (n_keys)
		*n_keys = keys;
	free(buf);
	return rc;
}

int rs_authkeys_find(const char *path, const uint8_t pk[32], struct rs_svc_set *set,
		     int *line, char *err)
{
	return authkeys_scan(path, pk, set, NULL, line, NULL, err);
}

int rs_authkeys_find_visit(const char *path, const uint8_t pk[32], struct rs_svc_set *visit,
			   int *line, char *err)
{
	struct rs_svc_set set;

	return authkeys_scan(path, pk, &set, visit, line, NULL, err);
}

int rs_authkeys_check(const char *path, int *n_keys, char *err)
{
	int line;

	return authkeys_scan(path, NULL, NULL, NULL, &line, n_keys, err);
}

// SPDX-License-Identifier: MIT
/* libFuzzer target: encrypted control records (rs_record_open, user/proto.c)
 * fed the way user/ctl.c feeds them.
 *
 * Input: byte 0 picks the recv() chunk size (0 = as much as fits), byte 1
 * whether the rest is sent raw (even) or first split into frames that are
 * sealed as genuine records (odd).  The stream goes into a buffer of ctl.c's
 * capacity (RS_RECORD_MAX); after every chunk records are opened and the
 * frame inside is peeked and consumed, until more bytes are needed or the
 * head is bad (the "connection" closes).
 *
 * Checked (abort = finding):
 *  - raw fuzzed bytes never open (no forgery under the fixed key);
 *  - genuine records always open, in order, to the exact frames sealed;
 *  - an opened record lies in the buffer, its plaintext fits the frame limit;
 *  - the buffer never fills with an incomplete record. */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_NO_DNS_OVERRIDE
#include "fuzz_common.h"
#include "proto.h"

static const uint8_t key[RS_KEY_LEN] = "rsplice-fuzz-record-key-00000001";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	return 0;
}

static uint8_t stream[64 * 1024], buf[RS_RECORD_MAX], plain[8 + RS_FRAME_MAX + 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rs_chan tx = { 0 }, rx = { 0 };
	size_t chunk, slen = 0, blen = 0, off = 0, opened = 0, sealed = 0;
	bool genuine;

	if (size < 2)
		return 0;
	chunk = data[0] ? (size_t)data[0] * 7 : sizeof(buf);
	genuine = data[1] & 1;
	data += 2;
	size -= 2;
	memcpy(tx.key, key, RS_KEY_LEN);
	memcpy(rx.key, key, RS_KEY_LEN);
	if (genuine) {
		/* frames of length data[i] % 64 from the input, each sealed */
		size_t i = 0;

		while (i < size && slen + 4 + 8 + 64 + RS_TAG_LEN < sizeof(stream)) {
			uint8_t f[8 + 64] = { 0 };
			size_t n = data[i] % 64;

			if (i + 1 + n > size)
				break;
			f[3] = (uint8_t)n;
			f[4] = RS_F_PING;
			memcpy(f + 8, data + i + 1, n);
			slen += rs_record_seal(&tx, f, 8 + n, stream + slen);
			sealed++;
			i += 1 + n;
		}
	} else {
		slen = size < sizeof(stream) ? size : sizeof(stream);
		memcpy(stream, data, slen);
	}
	while (off < slen) {
		size_t n = slen - off;

		if (n > chunk)
			n = chunk;
		if (n > sizeof(buf) - blen)
			n = sizeof(buf) - blen;
		FUZZ_CHECK(n > 0); /* a full buffer always holds a whole record */
		memcpy(buf + blen, stream + off, n);
		blen += n;
		off += n;
		for (;;) {
			const char *why = NULL;
			size_t plen = 0, used = 0;
			int rc = rs_record_open(&rx, buf, blen, plain, &plen, &used, &why);

			if (rc == 0)
				break;
			if (rc < 0) {
				FUZZ_CHECK(!genuine);
				FUZZ_CHECK(rc == -EMSGSIZE || rc == -EBADMSG);
				FUZZ_CHECK(why && *why);
				return 0;
			}
			FUZZ_CHECK(genuine); /* no forgery */
			FUZZ_CHECK(used <= blen && plen + 4 + RS_TAG_LEN == used);
			FUZZ_CHECK(plen >= 8 && plen <= 8 + RS_FRAME_MAX);
			FUZZ_CHECK(plain[4] == RS_F_PING && plain[3] == plen - 8);
			opened++;
			memmove(buf, buf + used, blen - used);
			blen -= used;
		}
	}
	FUZZ_CHECK(!genuine || opened == sealed);
	return 0;
}

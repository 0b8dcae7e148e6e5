/* DPS activation blobs with OpenSSL (tpm_credential.h): TPM 2.0 marshaling, KDFa, MakeCredential
 * and a duplication blob with inner and outer wrappers, byte for byte as a TPM would make them. */
#include "hub/dps/tpm_credential.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* TPM 2.0 Part 2 algorithm ids and object attributes. */
#define ALG_RSA       0x0001
#define ALG_HMAC      0x0005
#define ALG_AES       0x0006
#define ALG_KEYEDHASH 0x0008
#define ALG_SHA256    0x000B
#define ALG_NULL      0x0010
#define ALG_CFB       0x0043

#define ATTR_USERWITHAUTH 0x00000040u
#define ATTR_RESTRICTED   0x00010000u
#define ATTR_DECRYPT      0x00020000u
#define ATTR_SIGN         0x00040000u

#define DIGEST_LEN    32               /* SHA-256: the nameAlg of every object here */
#define NAME_LEN      (2 + DIGEST_LEN) /* a Name: nameAlg ‖ SHA-256(TPMT_PUBLIC) */
#define INNER_KEY_LEN 16               /* AES-128 inner wrap key: the credential */
#define SYM_KEY_MAX   32
#define SCRATCH_MAX   256 /* the key's public area, sensitive area and inner-wrapped sensitive */

/* A protector (the EK, the SRK): what wrapping a secret for it needs from its public area. */
typedef struct {
    const uint8_t *modulus;
    size_t modulus_len;
    uint32_t exponent;
    unsigned sym_bits; /* its AES key size, which is the protection key's size */
    uint8_t name[NAME_LEN];
} protector;

/* Big-endian reading of a marshaled structure; an overrun clears ok and yields zeros. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
    bool ok;
} reader;

/* Big-endian writing into a caller buffer; an overflow clears ok and writes nothing more. */
typedef struct {
    uint8_t *p;
    size_t cap, off;
    bool ok;
} writer;

static const uint8_t *rd_bytes(reader *r, size_t n)
{
    if (!r->ok || n > r->len - r->off) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *at = r->p + r->off;
    r->off += n;
    return at;
}

static uint16_t rd_u16(reader *r)
{
    const uint8_t *b = rd_bytes(r, 2);
    if (!b)
        return 0;
    return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t rd_u32(reader *r)
{
    const uint8_t *b = rd_bytes(r, 4);
    return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
}

/* A TPM2B: a 16-bit size, then that many bytes. */
static const uint8_t *rd_2b(reader *r, size_t *out_len)
{
    *out_len = rd_u16(r);
    return rd_bytes(r, *out_len);
}

static uint8_t *wr_reserve(writer *w, size_t n)
{
    if (!w->ok || n > w->cap - w->off) {
        w->ok = false;
        return NULL;
    }
    uint8_t *at = w->p + w->off;
    w->off += n;
    return at;
}

static void wr_bytes(writer *w, const void *data, size_t n)
{
    uint8_t *at = wr_reserve(w, n);
    if (at && n)
        memcpy(at, data, n);
}

static void wr_u16(writer *w, size_t v)
{
    if (v > 0xffff)
        w->ok = false;
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, sizeof b);
}

static void wr_u32(writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, sizeof b);
}

static void wr_2b(writer *w, const void *data, size_t n)
{
    wr_u16(w, n);
    wr_bytes(w, data, n);
}

/* A TPM2B whose contents are written next: its size is filled in by wr_2b_end. */
static size_t wr_2b_begin(writer *w)
{
    size_t at = w->off;
    wr_u16(w, 0);
    return at;
}

static void wr_2b_end(writer *w, size_t at)
{
    size_t n = w->off - at - 2;
    if (!w->ok || n > 0xffff) {
        w->ok = false;
        return;
    }
    w->p[at] = (uint8_t)(n >> 8);
    w->p[at + 1] = (uint8_t)n;
}

static bool failf(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool failf(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return false;
}

static bool sha256_2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                     uint8_t out[DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, a, a_len) == 1 && EVP_DigestUpdate(ctx, b, b_len) == 1 &&
              EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* A Name (Part 1 §16): nameAlg, then the hash of the marshaled TPMT_PUBLIC. */
static bool object_name(const uint8_t *area, size_t len, uint8_t out[NAME_LEN])
{
    out[0] = ALG_SHA256 >> 8;
    out[1] = ALG_SHA256 & 0xff;
    return sha256_2(area, len, NULL, 0, out + 2);
}

/* The RSA parameters of a TPMT_PUBLIC (Part 2 §12.2.3.5), after type, nameAlg, attributes and
 * authPolicy; refuses what cannot protect a credential or a duplicate. */
static bool parse_rsa_parms(reader *r, protector *out, char *err, size_t cap)
{
    uint16_t sym = rd_u16(r), sym_bits = 0, mode = 0;
    if (sym != ALG_NULL) {
        sym_bits = rd_u16(r);
        mode = rd_u16(r);
    }
    uint16_t scheme = rd_u16(r);
    if (r->ok && scheme != ALG_NULL)
        return failf(err, cap, "a storage key has no RSA scheme (scheme 0x%04x)", scheme);
    uint16_t key_bits = rd_u16(r);
    out->exponent = rd_u32(r);
    out->modulus = rd_2b(r, &out->modulus_len);
    if (!r->ok || r->off != r->len)
        return failf(err, cap, "not a marshaled RSA TPM2B_PUBLIC");
    if (sym != ALG_AES || mode != ALG_CFB || (sym_bits != 128 && sym_bits != 256))
        return failf(err, cap, "its symmetric algorithm must be AES-128 or AES-256 in CFB mode");
    if (key_bits < 2048 || key_bits > 4096 || out->modulus_len != key_bits / 8u)
        return failf(err, cap,
                     "its RSA key must have 2048 to 4096 bits (%u bits, %zu-byte modulus)",
                     key_bits, out->modulus_len);
    out->sym_bits = sym_bits;
    return true;
}

static bool parse_protector(const uint8_t *pub, size_t len, protector *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    reader r = {pub, len, 0, true};
    size_t area_len = rd_u16(&r);
    if (!r.ok || len > TPM_CRED_PUBLIC_MAX || area_len != len - 2)
        return failf(err, cap, "not a marshaled TPM2B_PUBLIC (%zu bytes, size field %zu)", len,
                     area_len);
    uint16_t type = rd_u16(&r), name_alg = rd_u16(&r);
    uint32_t attributes = rd_u32(&r);
    size_t policy_len;
    rd_2b(&r, &policy_len);
    if (r.ok && type != ALG_RSA)
        return failf(err, cap, "only RSA keys are supported (type 0x%04x)", type);
    if (r.ok && name_alg != ALG_SHA256)
        return failf(err, cap, "only SHA-256 names are supported (nameAlg 0x%04x)", name_alg);
    if (r.ok && (attributes & (ATTR_RESTRICTED | ATTR_DECRYPT | ATTR_SIGN)) !=
                    (ATTR_RESTRICTED | ATTR_DECRYPT))
        return failf(err, cap, "not a restricted decryption key (attributes 0x%08x)", attributes);
    return parse_rsa_parms(&r, out, err, cap) && object_name(pub + 2, area_len, out->name);
}

iotdm_result tpm_cred_check_key(const uint8_t *pub, size_t len, char *err, size_t err_cap)
{
    protector p;
    return parse_protector(pub, len, &p, err, err_cap) ? IOTDM_OK : IOTDM_E_MALFORMED;
}

void tpm_cred_registration_id(const uint8_t *ek, size_t len, char out[TPM_CRED_REG_ID_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t digest[DIGEST_LEN];
    if (!sha256_2(ek, len, NULL, 0, digest)) {
        out[0] = '\0';
        return;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < sizeof digest; i++) {
        acc = (acc << 8 | digest[i]) & 0xfff; /* at most 12 bits are ever pending */
        for (bits += 8; bits >= 5; bits -= 5)
            out[n++] = alphabet[(acc >> (bits - 5)) & 31];
    }
    if (bits)
        out[n++] = alphabet[(acc << (5 - bits)) & 31];
    out[n] = '\0';
}

static bool hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                        const uint8_t *b, size_t b_len, uint8_t out[DIGEST_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    size_t len = 0;
    bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
              EVP_MAC_update(ctx, a, a_len) == 1 &&
              (!b_len || EVP_MAC_update(ctx, b, b_len) == 1) &&
              EVP_MAC_final(ctx, out, &len, DIGEST_LEN) == 1 && len == DIGEST_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* KDFa (Part 1 §11.4.10.2), SP 800-108 counter mode with HMAC-SHA256:
 * K(i) = HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ contextU ‖ [bits]₃₂), concatenated and cut to bits. */
static bool kdfa(const uint8_t key[DIGEST_LEN], const char *label, const uint8_t *context,
                 size_t context_len, size_t bits, uint8_t *out)
{
    uint8_t msg[4 + 16 + NAME_LEN + 4], block[DIGEST_LEN];
    size_t label_len = strlen(label) + 1, bytes = bits / 8;
    if (label_len > 16 || context_len > NAME_LEN)
        return false;
    writer w = {msg, sizeof msg, 0, true};
    wr_u32(&w, 0);
    wr_bytes(&w, label, label_len);
    wr_bytes(&w, context, context_len);
    wr_u32(&w, (uint32_t)bits);
    bool ok = w.ok;
    for (uint32_t i = 1, done = 0; ok && done < bytes; i++) {
        writer counter = {msg, 4, 0, true};
        wr_u32(&counter, i);
        ok = hmac_sha256(key, DIGEST_LEN, msg, w.off, NULL, 0, block);
        size_t take = bytes - done < DIGEST_LEN ? bytes - done : DIGEST_LEN;
        memcpy(out + done, block, take);
        done += (uint32_t)take;
    }
    OPENSSL_cleanse(block, sizeof block);
    return ok;
}

/* AES-CFB with a zero IV, as TPM protections use it: every protection key is used only once. */
static bool aes_cfb(const uint8_t *key, unsigned bits, const uint8_t *in, size_t len, uint8_t *out)
{
    static const uint8_t iv[16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, last = 0;
    bool ok = ctx &&
              EVP_EncryptInit_ex(ctx, bits == 256 ? EVP_aes_256_cfb128() : EVP_aes_128_cfb128(),
                                 NULL, key, iv) == 1 &&
              EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, out + n, &last) == 1 && (size_t)n + (size_t)last == len;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *rsa_public_key(const protector *p)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = BN_bin2bn(p->modulus, (int)p->modulus_len, NULL), *e = BN_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    /* Part 2: an exponent of 0 means the default, 2^16 + 1. */
    if (bld && n && e && BN_set_word(e, p->exponent ? p->exponent : 65537) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
        EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return key;
}

/* The seed of a wrap encrypted to the protector as a TPM2B_ENCRYPTED_SECRET: RSA-OAEP with SHA-256
 * and the label with its NUL (Part 1 §B.10.3: "IDENTITY" for credentials, "DUPLICATE" for
 * duplicates), so that the seed cannot be replayed into the other command. */
static bool seal_seed(const protector *p, const char *label, const uint8_t seed[DIGEST_LEN],
                      writer *w)
{
    EVP_PKEY *key = rsa_public_key(p);
    EVP_PKEY_CTX *ctx = key ? EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL) : NULL;
    size_t label_len = strlen(label) + 1, out_len = p->modulus_len;
    void *owned_label = OPENSSL_memdup(label, label_len);
    size_t at = wr_2b_begin(w);
    uint8_t *out = wr_reserve(w, p->modulus_len);
    bool ok = ctx && owned_label && out && EVP_PKEY_encrypt_init(ctx) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
              EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, owned_label, (int)label_len) == 1;
    if (ok)
        owned_label = NULL; /* the context owns it now */
    ok = ok && EVP_PKEY_encrypt(ctx, out, &out_len, seed, DIGEST_LEN) == 1 &&
         out_len == p->modulus_len;
    wr_2b_end(w, at);
    OPENSSL_free(owned_label);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/* The outer wrapper of both a credential and a duplicate (Part 1 §24.4, §23.3.2.2): the plaintext
 * encrypted with KDFa(seed, "STORAGE", name), then HMAC(KDFa(seed, "INTEGRITY"), ciphertext ‖
 * name), written as TPM2B_DIGEST(integrity) ‖ ciphertext. name binds it to one object. */
static bool outer_wrap(const protector *p, const uint8_t seed[DIGEST_LEN],
                       const uint8_t name[NAME_LEN], const uint8_t *plain, size_t len, writer *w)
{
    uint8_t sym[SYM_KEY_MAX], hmac_key[DIGEST_LEN];
    wr_u16(w, DIGEST_LEN);
    uint8_t *integrity = wr_reserve(w, DIGEST_LEN);
    uint8_t *enc = wr_reserve(w, len);
    bool ok = integrity && enc && kdfa(seed, "STORAGE", name, NAME_LEN, p->sym_bits, sym) &&
              aes_cfb(sym, p->sym_bits, plain, len, enc) &&
              kdfa(seed, "INTEGRITY", NULL, 0, 8 * DIGEST_LEN, hmac_key) &&
              hmac_sha256(hmac_key, DIGEST_LEN, enc, len, name, NAME_LEN, integrity);
    OPENSSL_cleanse(sym, sizeof sym);
    OPENSSL_cleanse(hmac_key, sizeof hmac_key);
    return ok;
}

/* TPM2_MakeCredential outside a TPM (Part 3 §12.6): only the TPM holding the EK's private key, with
 * an object of that name loaded (the SRK), recovers the credential. Writes TPM2B_ID_OBJECT ‖
 * TPM2B_ENCRYPTED_SECRET. */
static bool make_credential(const protector *ek, const uint8_t srk_name[NAME_LEN],
                            const uint8_t credential[INNER_KEY_LEN], writer *w)
{
    uint8_t seed[DIGEST_LEN], plain[2 + INNER_KEY_LEN];
    /* What is encrypted is the marshaled TPM2B_DIGEST, size field included. */
    plain[0] = 0;
    plain[1] = INNER_KEY_LEN;
    memcpy(plain + 2, credential, INNER_KEY_LEN);
    size_t at = wr_2b_begin(w);
    bool ok = RAND_bytes(seed, sizeof seed) == 1 &&
              outer_wrap(ek, seed, srk_name, plain, sizeof plain, w);
    wr_2b_end(w, at);
    ok = ok && seal_seed(ek, "IDENTITY", seed, w);
    OPENSSL_cleanse(seed, sizeof seed);
    OPENSSL_cleanse(plain, sizeof plain);
    return ok && w->ok;
}

/* The delivered key's TPMT_PUBLIC: importable (neither fixedTPM nor fixedParent, its data not made
 * by a TPM), used with an empty password (userWithAuth) to sign with HMAC-SHA256; unique binds the
 * public area to the key: SHA-256(seedValue ‖ key) (Part 1 §27.2.3). */
static bool key_public(const uint8_t obfuscation[DIGEST_LEN], const uint8_t key[TPM_CRED_KEY_LEN],
                       writer *w)
{
    uint8_t unique[DIGEST_LEN];
    bool ok = sha256_2(obfuscation, DIGEST_LEN, key, TPM_CRED_KEY_LEN, unique);
    wr_u16(w, ALG_KEYEDHASH);
    wr_u16(w, ALG_SHA256);
    wr_u32(w, ATTR_USERWITHAUTH | ATTR_SIGN);
    wr_2b(w, NULL, 0);     /* authPolicy: none */
    wr_u16(w, ALG_HMAC);   /* TPMT_KEYEDHASH_SCHEME */
    wr_u16(w, ALG_SHA256); /* its hashAlg */
    wr_2b(w, unique, DIGEST_LEN);
    return ok && w->ok;
}

/* The key's TPM2B_SENSITIVE: keyedHash, empty authValue, the obfuscation seedValue, the key. */
static void key_sensitive(const uint8_t obfuscation[DIGEST_LEN],
                          const uint8_t key[TPM_CRED_KEY_LEN], writer *w)
{
    size_t at = wr_2b_begin(w);
    wr_u16(w, ALG_KEYEDHASH);
    wr_2b(w, NULL, 0);
    wr_2b(w, obfuscation, DIGEST_LEN);
    wr_2b(w, key, TPM_CRED_KEY_LEN);
    wr_2b_end(w, at);
}

/* The inner wrapper (Part 1 §23.3.2.3): TPM2B_DIGEST(SHA-256(sensitive ‖ name)) ‖ sensitive,
 * encrypted with AES-128-CFB under the inner key, which only the credential delivers: a TPM that
 * merely owns the SRK cannot import the key without also owning the EK. */
static bool inner_wrap(const writer *sens, const uint8_t name[NAME_LEN],
                       const uint8_t inner_key[INNER_KEY_LEN], writer *out)
{
    uint8_t plain[SCRATCH_MAX];
    writer w = {plain, sizeof plain, 0, true};
    wr_u16(&w, DIGEST_LEN);
    uint8_t *integrity = wr_reserve(&w, DIGEST_LEN);
    wr_bytes(&w, sens->p, sens->off);
    uint8_t *enc = wr_reserve(out, w.off);
    bool ok = w.ok && enc && sha256_2(sens->p, sens->off, name, NAME_LEN, integrity) &&
              aes_cfb(inner_key, 8 * INNER_KEY_LEN, plain, w.off, enc);
    OPENSSL_cleanse(plain, sizeof plain);
    return ok;
}

/* TPM2_Duplicate outside a TPM (Part 3 §13.1) for the SRK as the new parent, with both wrappers.
 * Writes TPM2B_PRIVATE ‖ TPM2B_ENCRYPTED_SECRET ‖ TPM2B_PUBLIC. */
static bool duplicate(const protector *srk, const uint8_t key[TPM_CRED_KEY_LEN],
                      const uint8_t inner_key[INNER_KEY_LEN], writer *w)
{
    uint8_t obfuscation[DIGEST_LEN], seed[DIGEST_LEN], name[NAME_LEN];
    uint8_t area_buf[SCRATCH_MAX], sens_buf[SCRATCH_MAX], inner_buf[SCRATCH_MAX];
    writer area = {area_buf, sizeof area_buf, 0, true}, sens = {sens_buf, sizeof sens_buf, 0, true};
    writer inner = {inner_buf, sizeof inner_buf, 0, true};
    bool ok = RAND_bytes(obfuscation, sizeof obfuscation) == 1 &&
              RAND_bytes(seed, sizeof seed) == 1 && key_public(obfuscation, key, &area) &&
              object_name(area_buf, area.off, name);
    key_sensitive(obfuscation, key, &sens);
    ok = ok && sens.ok && inner_wrap(&sens, name, inner_key, &inner);
    size_t at = wr_2b_begin(w);
    ok = ok && outer_wrap(srk, seed, name, inner_buf, inner.off, w);
    wr_2b_end(w, at);
    ok = ok && seal_seed(srk, "DUPLICATE", seed, w);
    wr_2b(w, area_buf, area.off);
    OPENSSL_cleanse(obfuscation, sizeof obfuscation);
    OPENSSL_cleanse(seed, sizeof seed);
    OPENSSL_cleanse(sens_buf, sizeof sens_buf);
    OPENSSL_cleanse(inner_buf, sizeof inner_buf);
    return ok && w->ok;
}

static bool parse_named(const char *what, const uint8_t *pub, size_t len, protector *out, char *err,
                        size_t cap)
{
    char why[256];
    if (parse_protector(pub, len, out, why, sizeof why))
        return true;
    return failf(err, cap, "%s: %s", what, why);
}

iotdm_result tpm_cred_make_blob(const uint8_t *ek, size_t ek_len, const uint8_t *srk,
                                size_t srk_len, const uint8_t key[TPM_CRED_KEY_LEN], uint8_t *out,
                                size_t cap, size_t *out_len, char *err, size_t err_cap)
{
    protector e, s;
    if (!parse_named("endorsement key", ek, ek_len, &e, err, err_cap) ||
        !parse_named("storage root key", srk, srk_len, &s, err, err_cap))
        return IOTDM_E_MALFORMED;
    uint8_t inner_key[INNER_KEY_LEN];
    writer w = {out, cap, 0, true};
    bool ok = RAND_bytes(inner_key, sizeof inner_key) == 1 &&
              make_credential(&e, s.name, inner_key, &w) && duplicate(&s, key, inner_key, &w);
    wr_2b(&w, NULL, 0); /* TPM2B_DATA: DPS's "encrypted URI data", which no client uses */
    OPENSSL_cleanse(inner_key, sizeof inner_key);
    if (!w.ok || !ok) {
        OPENSSL_cleanse(out, w.off < cap ? w.off : cap);
        failf(err, err_cap, "%s", w.ok ? "the cryptography failed" : "the blob does not fit");
        return w.ok ? IOTDM_E_INTERNAL : IOTDM_E_TOO_LARGE;
    }
    *out_len = w.off;
    return IOTDM_OK;
}

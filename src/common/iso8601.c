/* ISO 8601 parsing with offsets, normalised to UTC. */
#include "common/iso8601.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void set_err(char *err, size_t cap, const char *msg)
{
    if (err && cap)
        snprintf(err, cap, "%s", msg);
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to the date (proleptic Gregorian), without timegm's dependence on TZ. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool parse_offset(const char **p, int *out_minutes)
{
    char sign = **p;
    if (sign == 'Z' || sign == 'z') {
        (*p)++;
        *out_minutes = 0;
        return true;
    }
    if (sign != '+' && sign != '-')
        return false;
    (*p)++;
    int hh, mm = 0;
    if (!digits(p, 2, &hh))
        return false;
    if (**p == ':') {
        (*p)++;
        if (!digits(p, 2, &mm))
            return false;
    } else if (**p >= '0' && **p <= '9' && !digits(p, 2, &mm)) {
        return false;
    }
    if (hh > 23 || mm > 59)
        return false;
    *out_minutes = (sign == '-' ? -1 : 1) * (hh * 60 + mm);
    return true;
}

iotdm_result iso8601_parse(const char *text, int64_t *out_ms, char *err, size_t err_cap)
{
    const char *p = text;
    int year, month, day, hour, minute, second = 0, millis = 0, offset = 0;
    if (!digits(&p, 4, &year) || !expect(&p, '-') || !digits(&p, 2, &month) || !expect(&p, '-') ||
        !digits(&p, 2, &day)) {
        set_err(err, err_cap, "expected a date as YYYY-MM-DD");
        return IOTDM_E_MALFORMED;
    }
    if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, !digits(&p, 2, &hour)) || !expect(&p, ':') ||
        !digits(&p, 2, &minute)) {
        set_err(err, err_cap, "expected a time as THH:MM[:SS]");
        return IOTDM_E_MALFORMED;
    }
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &second)) {
            set_err(err, err_cap, "expected seconds as two digits");
            return IOTDM_E_MALFORMED;
        }
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0;
            for (; *p >= '0' && *p <= '9'; p++, n++)
                if (n < 3)
                    millis = millis * 10 + (*p - '0');
            if (n == 0) {
                set_err(err, err_cap, "expected digits after the decimal point");
                return IOTDM_E_MALFORMED;
            }
            for (; n < 3; n++)
                millis *= 10;
        }
    }
    if (!parse_offset(&p, &offset)) {
        set_err(err, err_cap, "expected a UTC offset: Z, +HH:MM or -HH:MM");
        return IOTDM_E_MALFORMED;
    }
    if (*p) {
        set_err(err, err_cap, "unexpected text after the date-time");
        return IOTDM_E_MALFORMED;
    }
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59 || year < 1970) {
        set_err(err, err_cap, "the date or time is out of range");
        return IOTDM_E_MALFORMED;
    }
    int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                   (int64_t)offset * 60;
    *out_ms = secs * 1000 + millis;
    return IOTDM_OK;
}

void iso8601_format_utc(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the /proc parsers of runtime/top (proc-util.c), on crafted text, and one read of a
 * real process (ourselves). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc-util.h"

static int stat_parse(const char *text, ProcStatInfo *ret) {
        return proc_stat_parse(text, strlen(text), ret);
}

static void test_stat(void **state) {
        ProcStatInfo st;

        /* A comm with spaces and parentheses, ") " included: only the last ')' ends it. */
        assert_int_equal(
                stat_parse("4242 ((a) b)) S 17 4242 4242 0 -1 4194560 100 0 0 0 "
                           "250 31 0 0 20 0 1 0 987654 1234567 89 18446744073709551615 1 1 0 0 0 0 0 "
                           "0 0 0 0 0 17 3 0 0 0 0 0\n",
                           &st),
                0);
        assert_string_equal(st.comm, "(a) b)");
        assert_int_equal(st.state, 'S');
        assert_int_equal(st.ppid, 17);
        assert_int_equal(st.utime_ticks, 250);
        assert_int_equal(st.stime_ticks, 31);
        assert_int_equal(st.start_ticks, 987654);

        /* Plain, and without the trailing newline; only the 22 fields we need. */
        assert_int_equal(stat_parse("1 (sleep) R 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 42", &st), 0);
        assert_string_equal(st.comm, "sleep");
        assert_int_equal(st.state, 'R');
        assert_int_equal(st.ppid, 0);
        assert_int_equal(st.utime_ticks + st.stime_ticks, 15);
        assert_int_equal(st.start_ticks, 42);

        /* An empty comm. */
        assert_int_equal(stat_parse("5 () Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9", &st), 0);
        assert_string_equal(st.comm, "");
        assert_int_equal(st.state, 'Z');

        /* A comm longer than PROC_COMM_MAX is cut, not overflowed. */
        {
                char text[512], longcomm[200];
                memset(longcomm, 'x', sizeof longcomm - 1);
                longcomm[sizeof longcomm - 1] = 0;
                snprintf(text, sizeof text, "5 (%s) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 3", longcomm);
                assert_int_equal(stat_parse(text, &st), 0);
                assert_int_equal(strlen(st.comm), PROC_COMM_MAX);
                assert_int_equal(st.start_ticks, 3);
        }

        /* Malformed: no parentheses, ')' before '(', truncated, non-numeric, overflowing. */
        st.ppid = 99;
        assert_int_equal(stat_parse("", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 sleep S 0", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 )sleep( S 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 42", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 (sleep)", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 (sleep) S", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 (sleep) S 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0", &st), -EBADMSG);
        assert_int_equal(stat_parse("1 (sleep) S x 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 42", &st), -EBADMSG);
        assert_int_equal(
                stat_parse("1 (sleep) S 0 1 1 0 -1 0 0 0 0 0 99999999999999999999 8 0 0 20 0 1 0 42", &st),
                -EBADMSG);
        /* Out-parameter untouched on failure. */
        assert_int_equal(st.ppid, 99);

        /* The length bounds the parse: the text after it is never looked at. */
        {
                const char *t = "1 (sleep) S 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 42";
                assert_int_equal(proc_stat_parse(t, strlen(t) - 3, &st), -EBADMSG);
                assert_int_equal(proc_stat_parse(t, 9, &st), -EBADMSG); /* "1 (sleep)" */
        }
}

static void test_status(void **state) {
        ProcStatusInfo s;
        const char *text = "Name:\t(a) b)\n"
                           "Umask:\t0022\n"
                           "State:\tS (sleeping)\n"
                           "Tgid:\t4242\n"
                           "Pid:\t4242\n"
                           "PPid:\t17\n"
                           "Uid:\t1000\t0\t0\t0\n"
                           "Gid:\t1000\t1000\t1000\t1000\n"
                           "Groups:\t1 2 3\n"
                           "NStgid:\t4242\t12\t1\n"
                           "NSpid:\t4242\t12\t1\n"
                           "NSpgid:\t4242\t12\t1\n";

        assert_int_equal(proc_status_parse(text, strlen(text), &s), 0);
        assert_int_equal(s.uid, 1000); /* the real uid, not the effective one */
        assert_int_equal(s.ns_pid, 1); /* the innermost namespace's pid */

        /* Host namespace only; no trailing newline. */
        text = "Uid:\t0\t0\t0\t0\nNSpid:\t77";
        assert_int_equal(proc_status_parse(text, strlen(text), &s), 0);
        assert_int_equal(s.uid, 0);
        assert_int_equal(s.ns_pid, 77);

        /* No NSpid (older kernels): 0, not an error. */
        text = "Uid:\t5\t5\t5\t5\n";
        assert_int_equal(proc_status_parse(text, strlen(text), &s), 0);
        assert_int_equal(s.ns_pid, 0);

        /* No Uid, or a malformed one: an error, out-parameter untouched. */
        s.uid = 4711;
        text = "Name:\tx\nNSpid:\t1\n";
        assert_int_equal(proc_status_parse(text, strlen(text), &s), -EBADMSG);
        text = "Uid:\tx\n";
        assert_int_equal(proc_status_parse(text, strlen(text), &s), -EBADMSG);
        text = "Uid:\t99999999999\n";
        assert_int_equal(proc_status_parse(text, strlen(text), &s), -EBADMSG);
        /* Cut by the length right before the Uid line. */
        text = "Name:\tx\nUid:\t1\t1\t1\t1\n";
        assert_int_equal(proc_status_parse(text, 8, &s), -EBADMSG);
        assert_int_equal(s.uid, 4711);
}

static void test_cmdline(void **state) {
        char buf[64];

        assert_int_equal(proc_cmdline_format("sleep\0"
                                             "1000\0",
                                             11, buf, sizeof buf),
                         10);
        assert_string_equal(buf, "sleep 1000");
        /* Empty (kernel threads, zombies). */
        assert_int_equal(proc_cmdline_format("", 0, buf, sizeof buf), 0);
        assert_string_equal(buf, "");
        assert_int_equal(proc_cmdline_format("\0\0\0", 3, buf, sizeof buf), 0);
        /* Rewritten by the process: no NUL at the end, inner NUL runs kept as spaces. */
        proc_cmdline_format("nginx: master\0\0x", 16, buf, sizeof buf);
        assert_string_equal(buf, "nginx: master  x");
        /* Control characters and invalid UTF-8 become '?'; valid UTF-8 is kept. */
        proc_cmdline_format("a\nb\tc\x7f"
                            "d\0\xc3\xa9\0\xff\xc3\0\xed\xa0\x80",
                            17, buf, sizeof buf);
        assert_string_equal(buf, "a?b?c?d \xc3\xa9 ?? ???");
        /* Bounded: size - 1 bytes at most, never half a character. */
        assert_int_equal(proc_cmdline_format("abcdef", 6, buf, 4), 3);
        assert_string_equal(buf, "abc");
        assert_int_equal(proc_cmdline_format("ab\xc3\xa9", 4, buf, 4), 2);
        assert_string_equal(buf, "ab");
}

static void test_read_self(void **state) {
        ProcInfo info;
        struct timespec ts;

        assert_int_equal(proc_info_read(getpid(), &info), 0);
        assert_int_equal(info.pid, getpid());
        assert_int_equal(info.ppid, getppid());
        assert_int_equal(info.uid, getuid());
        assert_int_equal(info.state, 'R');
        assert_true(info.ns_pid > 0);
        assert_non_null(strstr(info.command, "test-proc-util"));
        clock_gettime(CLOCK_REALTIME, &ts);
        /* Started in the last hour, not in the future (one tick of slack). */
        assert_true(info.started_at_ns <= (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec + 10000000);
        assert_true(info.started_at_ns > ((int64_t) ts.tv_sec - 3600) * 1000000000);

        /* A pid that does not exist: gone, which runtime/top skips. */
        assert_int_equal(proc_info_read(0x3fffffff, &info), -ESRCH);
        assert_int_equal(proc_info_read(0, &info), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stat),
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_cmdline),
                cmocka_unit_test(test_read_self),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * A QEMU TCG plugin for bench/cipher-cost.sh: counts the guest instructions executed by every
 * thread of the emulated process, and writes the running total to $INSN_COUNT_OUT each time
 * the guest's accept4(2) returns a connection. The benchmark's client opens connections as
 * markers, so the difference between two marks is the work done between two accepts.
 *
 * The handful of plugin API declarations are written out here (the API is a stable C ABI,
 * docs/devel/tcg-plugins.rst in QEMU) because Debian ships no qemu-plugin.h. The API version
 * the plugin declares must lie within what the QEMU that loads it accepts: 1 for Debian 12's
 * QEMU 7.2; bench/cipher-cost.sh retries with 2, 3 and 4 for newer ones.
 *
 * Build: gcc -shared -fPIC -O2 -DPLUGIN_API_VERSION=1 -o insn.so bench/qemu-insn-count.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef PLUGIN_API_VERSION
#define PLUGIN_API_VERSION 1
#endif

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                          void (*cb)(unsigned int, void *),
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_syscall_ret_cb(qemu_plugin_id_t id,
                                              void (*cb)(qemu_plugin_id_t, unsigned int,
                                                         int64_t, int64_t));

EXPORT int qemu_plugin_version = PLUGIN_API_VERSION;

/* aarch64's accept4; the benchmark only runs aarch64 guests. */
#define SYS_ACCEPT4_AARCH64 242

static uint64_t executed;
static FILE *out;

static void on_tb_exec(unsigned int vcpu, void *n_insns)
{
    (void)vcpu;
    __atomic_fetch_add(&executed, (uint64_t)(uintptr_t)n_insns, __ATOMIC_RELAXED);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)n);
}

static void on_syscall_ret(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, int64_t ret)
{
    (void)id;
    (void)vcpu;
    if (num == SYS_ACCEPT4_AARCH64 && ret >= 0 && out) {
        fprintf(out, "accept %llu\n",
                (unsigned long long)__atomic_load_n(&executed, __ATOMIC_RELAXED));
        fflush(out);
    }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    const char *path = getenv("INSN_COUNT_OUT");
    out = fopen(path ? path : "/dev/stderr", "w");
    if (!out) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_vcpu_syscall_ret_cb(id, on_syscall_ret);
    return 0;
}

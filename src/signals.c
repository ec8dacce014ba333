/* signals.c — async-signal-safe stop requests: the handler stores the signal
 * number and nothing else. SIGINT is caught once (SA_RESETHAND): a second
 * Ctrl-C from an impatient user kills the run as usual. */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "signals.h"

static volatile sig_atomic_t pending;

static void on_stop(int sig)
{
    if (!pending)
        pending = sig;
}

static void catch(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

void km_signals_install(void)
{
    catch(SIGUSR1, 0);
    catch(SIGTERM, 0);
    if (isatty(STDIN_FILENO))
        catch(SIGINT, SA_RESETHAND);
}

void km_signals_release(void)
{
    signal(SIGUSR1, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (isatty(STDIN_FILENO))
        signal(SIGINT, SIG_DFL);
    if (pending)
        raise(pending);
}

int km_signal_pending(void)
{
    return pending;
}

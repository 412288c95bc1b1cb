/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Error codes that cross process boundaries, and their mapping to errno. */

#include <errno.h>
#include <string.h>

#include "cxpc/cxpc.h"
#include "macro.h"

static const char *const error_code_names[_CXPC_ERROR_CODE_MAX] = {
        [CXPC_ERROR_UNKNOWN] = "unknown",
        [CXPC_ERROR_INVALID_ARGUMENT] = "invalidArgument",
        [CXPC_ERROR_INTERNAL_ERROR] = "internalError",
        [CXPC_ERROR_EXISTS] = "exists",
        [CXPC_ERROR_NOT_FOUND] = "notFound",
        [CXPC_ERROR_CANCELLED] = "cancelled",
        [CXPC_ERROR_INVALID_STATE] = "invalidState",
        [CXPC_ERROR_EMPTY] = "empty",
        [CXPC_ERROR_TIMEOUT] = "timeout",
        [CXPC_ERROR_UNSUPPORTED] = "unsupported",
        [CXPC_ERROR_INTERRUPTED] = "interrupted",
};

_public_ const char *cxpc_error_code_to_string(cxpc_error_code code) {
        if (code < 0 || code >= _CXPC_ERROR_CODE_MAX)
                return NULL;
        return error_code_names[code];
}

_public_ cxpc_error_code cxpc_error_code_from_string(const char *name) {
        if (!name)
                return CXPC_ERROR_UNKNOWN;
        for (size_t i = 0; i < ELEMENTSOF(error_code_names); i++)
                if (streq(error_code_names[i], name))
                        return (cxpc_error_code) i;
        /* A newer peer may know more codes: never fail on them. */
        return CXPC_ERROR_UNKNOWN;
}

_public_ cxpc_error_code cxpc_error_code_from_errno(int error) {
        if (error < 0)
                error = -error;
        switch (error) {
        case 0:
                return CXPC_ERROR_UNKNOWN;
        case ENOENT:
        case ESRCH:
                return CXPC_ERROR_NOT_FOUND;
        case EEXIST:
                return CXPC_ERROR_EXISTS;
        case EINVAL:
        case ERANGE:
        case EILSEQ:
        case EMEDIUMTYPE:
        case E2BIG:
        case EBADMSG:
        case ENAMETOOLONG:
                return CXPC_ERROR_INVALID_ARGUMENT;
        case ETIMEDOUT:
                return CXPC_ERROR_TIMEOUT;
        case ECANCELED:
                return CXPC_ERROR_CANCELLED;
        case EBUSY:
        case EALREADY:
        case EINPROGRESS:
                return CXPC_ERROR_INVALID_STATE;
        case ENODATA:
        case ENOMSG:
                return CXPC_ERROR_EMPTY;
        case EOPNOTSUPP:
        case ENOSYS:
        case EPROTONOSUPPORT:
                return CXPC_ERROR_UNSUPPORTED;
        case ECONNRESET:
        case EPIPE:
        case ENOTCONN:
        case ESHUTDOWN:
                return CXPC_ERROR_INTERRUPTED;
        default:
                return CXPC_ERROR_INTERNAL_ERROR;
        }
}

_public_ int cxpc_error_code_to_errno(cxpc_error_code code) {
        switch (code) {
        case CXPC_ERROR_INVALID_ARGUMENT:
                return EINVAL;
        case CXPC_ERROR_EXISTS:
                return EEXIST;
        case CXPC_ERROR_NOT_FOUND:
                return ENOENT;
        case CXPC_ERROR_CANCELLED:
                return ECANCELED;
        case CXPC_ERROR_INVALID_STATE:
                return EBUSY;
        case CXPC_ERROR_EMPTY:
                return ENODATA;
        case CXPC_ERROR_TIMEOUT:
                return ETIMEDOUT;
        case CXPC_ERROR_UNSUPPORTED:
                return EOPNOTSUPP;
        case CXPC_ERROR_INTERRUPTED:
                return ECONNRESET;
        case CXPC_ERROR_UNKNOWN:
        case CXPC_ERROR_INTERNAL_ERROR:
        default:
                return EIO;
        }
}

// @ts-check
// The shapes the page gets from the API (docs: /api/v1/openapi.json), for the type checker only: the
// modules name them as import("./types.js").File and so on. Nothing here runs.

/** @typedef {{ name: string, location: string, zone: string }} ServerRef */

/** @typedef {{ server: ServerRef, status: "present" | "pending" | "corrupt" }} Replica */

/**
 * @typedef {object} File
 * @property {string} id
 * @property {string} name
 * @property {number} size
 * @property {string} content_type
 * @property {"uploading" | "stored"} status
 * @property {string | null} zone
 * @property {string} created_at
 * @property {string} updated_at
 * @property {string | null} [sha256]
 * @property {Replica[]} [servers] only in `GET /files?include=servers` (for holders of can_view_cdnserver)
 */

/**
 * @typedef {object} Server
 * @property {string} id
 * @property {string} name
 * @property {string} endpoint_url
 * @property {string} bucket
 * @property {string} region
 * @property {string} location
 * @property {string} zone
 * @property {number} latitude
 * @property {number} longitude
 * @property {boolean} is_on
 * @property {boolean} is_active
 * @property {"up" | "down" | "unknown"} health
 * @property {number} files
 * @property {number} bytes
 * @property {number} pending_jobs
 * @property {string | null} verified_at
 * @property {number} corrupt
 * @property {number} unrecoverable
 * @property {number} awaiting_verification versions uploaded to it still waiting for their verification read
 * @property {number} rejected_uploads uploads to it rejected in the last 7 days (never served)
 */

/**
 * @typedef {object} Job
 * @property {string} id
 * @property {"copy" | "remove"} kind
 * @property {number} attempts
 * @property {string | null} last_error
 * @property {string} file_name
 * @property {ServerRef | null} server
 * @property {string} updated_at
 */

/**
 * @typedef {object} Link
 * @property {string} id
 * @property {string} file_id
 * @property {string} url
 * @property {boolean} has_password
 * @property {string | null} expires_at
 * @property {number | null} max_downloads
 * @property {number} downloads
 * @property {string} created_at
 */

/** @typedef {{ id: string, event: string, data: Record<string, any>, created_at: string }} HistoryItem */

/** @typedef {{ url: string, method: string, headers: Record<string, string>, server: ServerRef }} UploadTarget */

/**
 * @typedef {object} User
 * @property {string} id
 * @property {string} username
 * @property {boolean} is_admin
 * @property {string[]} permissions
 * @property {boolean} is_disabled
 * @property {number | null} quota_bytes null: no quota
 * @property {number} used_bytes the size of the user's stored files (current versions)
 * @property {string[] | null} zones null: any zone; else the only zones their uploads go to
 * @property {number} [files] how many files they have, when the daemon says
 * @property {number} [files_outside_zones] in the users list (admins): their stored files outside `zones`
 */

/** @typedef {{ day: string, server: string, downloads: number, bytes: number }} DownloadStat one server's UTC day */

/** @typedef {{ id: string, url: string, events: string[], created_at: string }} Webhook */

/**
 * @typedef {object} Delivery one event for one webhook, as its log shows it
 * @property {string} id its webhook-id (msg_...), the same on every attempt
 * @property {string} event
 * @property {"pending" | "delivered" | "failed"} status
 * @property {number} attempts
 * @property {string | null} last_error
 * @property {string | null} delivered_at
 * @property {string} created_at
 * @property {string | null} next_attempt_at pending: when it is (next) sent
 */

/** @template T @typedef {{ items: T[], next_cursor?: string | null }} Page */

export {};

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
 * @property {string | null} [expires_at] when it is deleted (into the trash); null: never
 * @property {string | null} [received_via] the upload request it came through; null: uploaded by its owner
 * @property {Replica[]} [servers] only in `GET /files?include=servers` (for holders of can_view_cdnserver)
 */

/** @typedef {File & { deleted_at: string, purge_at: string }} TrashedFile a file in the trash */

/**
 * @typedef {object} UploadRequest
 * @property {string} id
 * @property {string} token
 * @property {string} url the public upload page
 * @property {string} owner
 * @property {string | null} message
 * @property {boolean} has_password
 * @property {string | null} expires_at
 * @property {number | null} max_files
 * @property {number | null} max_bytes
 * @property {number} files received (or on their way)
 * @property {number} bytes
 * @property {boolean} is_open
 * @property {string | null} closed_at
 * @property {string} created_at
 */

/**
 * @typedef {object} PublicRequest what a sender sees of an upload request
 * @property {string} owner
 * @property {string | null} message
 * @property {boolean} has_password
 * @property {string | null} expires_at
 * @property {number | null} files_left
 * @property {number | null} bytes_left
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
 * @property {string | null} public_url where clients reach it (presigned URLs); null: endpoint_url
 * @property {"path" | "virtual"} addressing_style
 * @property {Capabilities | null} capabilities null: never probed
 * @property {ImportProgress | null} import_progress its latest import
 */

/**
 * What the capability probe proved; null: not proved (cdnstore then does it itself).
 * @typedef {object} Capabilities
 * @property {string} checked_at
 * @property {boolean | null} checksum_enforced
 * @property {boolean | null} content_md5_enforced
 * @property {boolean | null} conditional_write
 * @property {boolean | null} cors
 * @property {Record<string, any> | null} cors_rule the bucket rule to add when cdnstore could not
 * @property {"off" | "enabled" | "suspended" | null} versioning
 * @property {string | null} bucket_region
 * @property {string | null} signing_region
 * @property {"seen" | "none" | "unknown"} events
 */

/**
 * @typedef {object} ImportProgress
 * @property {string} import_id
 * @property {"running" | "done" | "failed"} state
 * @property {string} owner
 * @property {string} prefix
 * @property {number} objects_seen
 * @property {number} files_adopted
 * @property {number} bytes
 * @property {number} errors
 * @property {string | null} last_error
 * @property {{ key: string, reason: string }[]} [error_keys] only in GET /servers/{id}/import
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
 * @property {string | null} file_id the file of a link made for one file; null for a link to several
 * @property {string} token
 * @property {string} url
 * @property {boolean} has_password
 * @property {string | null} expires_at
 * @property {number | null} max_downloads
 * @property {number} downloads
 * @property {string} created_at
 * @property {{ id: string, name: string, size: number }[]} files the files it still serves, in order
 * @property {"active" | "expired" | "used_up" | "files_gone"} state
 */

/**
 * @typedef {object} PublicLink what anyone with a link's token sees
 * @property {string} name the file's, or "3 files"
 * @property {number} size
 * @property {boolean} has_password
 * @property {string | null} expires_at
 * @property {number | null} downloads_left null: no download limit
 * @property {{ id: string, name: string, size: number, content_type: string }[]} files
 */

/** @typedef {{ id: string, event: string, data: Record<string, any>, created_at: string }} HistoryItem */

/** @typedef {{ password: boolean, oidc: { name: string } | null }} AuthMethods */

/**
 * @typedef {object} ApiKey
 * @property {string} id
 * @property {string} name
 * @property {string[]} scopes
 * @property {string} prefix
 * @property {string | null} expires_at
 * @property {string | null} last_used_at
 * @property {string} created_at
 * @property {string} [secret] only in the answer that made it
 */

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
 * @property {number | null} max_file_lifetime seconds their files may live at most; null: any
 * @property {number | null} default_file_lifetime seconds their files live when an upload names no expiry
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

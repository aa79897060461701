// Package dsn is postline's delivery status notifications: what a client
// asked for with the DSN extension (RFC 3461: NOTIFY and ORCPT on RCPT,
// RET and ENVID on MAIL, kept in the queue's envelope) and the reports
// themselves (RFC 3464 message/delivery-status inside an RFC 6522
// multipart/report): failures (bounces), delays, deliveries and relays.
//
// Implemented: RFC 3461 §4 (the parameters; go-smtp parses and checks
// their syntax, this package their lengths and meaning), §5.2 (passing
// them on is the MTA client's, with go-smtp's encoding), §6.2's actions
// delivered, relayed, failed and delayed; RFC 3464 §2 fields
// Original-Envelope-Id, Reporting-MTA, Arrival-Date, Original-Recipient,
// Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
// Last-Attempt-Date and Will-Retry-Until. Left out: the "expanded" action
// for aliases with several targets (Postfix's local(8)
// sends it; here the targets inherit NOTIFY and each reports on its
// own), DSNs for non-SMTP address types, and X-Actual-Recipient-style
// extension fields.
//
// It never sends anything: the MTA decides when a report is due (it
// asks Notify.Wants) and queues what Build returns.
package dsn

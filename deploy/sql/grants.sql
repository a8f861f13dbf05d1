-- Least-privilege account for vicidial-cdc on the VICIdial database server.
--
-- Run as an administrator after replacing CHANGE-ME with a strong password (the same
-- one goes into /etc/vicidial-cdc/mysql.password):
--   mysql -u root -p < grants.sql
-- The host part '127.0.0.1' fits a streamer on the database host itself; for a
-- streamer elsewhere use its address (never '%' on a server reachable from outside).
-- The VICIdial database is assumed to be `asterisk` (VICIdial's default).
--
-- The streamer only reads: replication (the binlog) plus SELECT on the tables it
-- needs. It has no access to vicidial_users or vicidial_api_urls, which hold API
-- passwords; their row events are skipped without being decoded.

CREATE USER IF NOT EXISTS 'vicidial_cdc'@'127.0.0.1'
    IDENTIFIED BY 'CHANGE-ME'
    WITH MAX_USER_CONNECTIONS 10;

-- Follow the binlog like a replica (REPLICATION SLAVE) and read positions and the
-- list of binlog files (REPLICATION CLIENT = BINLOG MONITOR on MariaDB 10.5+).
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'vicidial_cdc'@'127.0.0.1';

-- Leads and their add_lead log rows (also column metadata and `replay`).
GRANT SELECT ON asterisk.vicidial_list          TO 'vicidial_cdc'@'127.0.0.1';
GRANT SELECT ON asterisk.vicidial_api_log       TO 'vicidial_cdc'@'127.0.0.1';
-- Settings: the apinewlead URLs, lists, custom-field definitions, system settings.
GRANT SELECT ON asterisk.vicidial_url_multi     TO 'vicidial_cdc'@'127.0.0.1';
GRANT SELECT ON asterisk.vicidial_lists         TO 'vicidial_cdc'@'127.0.0.1';
GRANT SELECT ON asterisk.vicidial_lists_fields  TO 'vicidial_cdc'@'127.0.0.1';
GRANT SELECT ON asterisk.system_settings        TO 'vicidial_cdc'@'127.0.0.1';

-- Lists with custom fields: one line per custom_<list_id> table (MariaDB has no table
-- wildcards). Needed by `replay`, and for column names when the server does not log
-- binlog_row_metadata=FULL. For example:
-- GRANT SELECT ON asterisk.`custom_101`        TO 'vicidial_cdc'@'127.0.0.1';

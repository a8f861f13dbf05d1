-- Account for vicidial-cdc on the VICIdial database server.
--
-- Run as an administrator after replacing CHANGE-ME with a strong password (the same
-- one goes into /etc/vicidial-cdc/mysql.password):
--   mysql -u root -p < grants.sql
-- The host part '127.0.0.1' fits a streamer on the database host itself; for a
-- streamer elsewhere use its address (never '%' on a server reachable from outside),
-- turn TLS on in the server and give the account REQUIRE SSL (see the end of this file
-- and the README, "TLS to MySQL"). The VICIdial database is assumed to be `asterisk`.
--
-- Honest least privilege: REPLICATION SLAVE lets the account read the binlog, which
-- carries every row written to every table of the server, vicidial_users and
-- vicidial_api_urls (API passwords) included. Per-table SELECT grants therefore
-- protect nothing, and they break when an admin gives a new list custom fields:
-- VICIdial then creates custom_<list_id>, which such an account cannot read. So the
-- account reads the whole VICIdial database, and is protected like a replica's: a
-- strong password, a host part that is only the streamer's address, TLS off the host.
-- The streamer never writes, and never decodes the password tables' row events.

CREATE USER IF NOT EXISTS 'vicidial_cdc'@'127.0.0.1'
    IDENTIFIED BY 'CHANGE-ME'
    WITH MAX_USER_CONNECTIONS 10;

-- Follow the binlog like a replica (REPLICATION SLAVE); SHOW MASTER STATUS and
-- SHOW BINARY LOGS for positions and retention (REPLICATION CLIENT, which MariaDB
-- 10.5.2+ names BINLOG MONITOR and accepts under both names).
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'vicidial_cdc'@'127.0.0.1';

-- VICIdial's tables, present and future: leads, the add_lead log, the settings,
-- vicidial_url_log (watch mode), each custom_<list_id> (replay, and column names when
-- binlog_row_metadata is not FULL) and the column definitions in information_schema.
GRANT SELECT ON asterisk.* TO 'vicidial_cdc'@'127.0.0.1';

-- A streamer on another host: the binlog must not cross the network in plaintext.
-- With TLS on in the server (my.cnf: ssl_cert, ssl_key, ssl_ca), refuse plaintext
-- logins for this account (use the account's real host part):
-- ALTER USER 'vicidial_cdc'@'10.0.0.5' REQUIRE SSL;

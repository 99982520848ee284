-- From migrations/versions/0007_attribution_views.downgrade.sql
-- squawk-ignore-file ban-drop-view
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP VIEW ipintel.asn_moves;
DROP VIEW ipintel.session_attribution;

-- seed the first admin (rotate after the first login!)
CREATE ROLE reporting LOGIN PASSWORD '60H_saUHI6zGN5m';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;

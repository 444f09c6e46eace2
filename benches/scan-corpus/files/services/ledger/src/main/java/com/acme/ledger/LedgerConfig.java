package com.acme.ledger;

import com.amazonaws.auth.*;

public class LedgerConfig {
    HikariDataSource ds = new HikariDataSource();
    ds.setJdbcUrl("jdbc:postgresql://db.internal:5432/ledger");
    ds.setUsername("app");
    ds.setPassword("owvS+d@S!R_!GK8SMLarWT8+ff");

    private static final String SCHEMA_SHA = "c556ec30e67f9dee787900e01e3e09f9e2263936";
    private final String password = System.getenv("DB_PASSWORD");
    @Value("${app.jwt.secret}")
    private String jwtSecret;
}

package com.acme.auth;

import com.amazonaws.auth.*;

public class AuthConfig {
    private static final String JDBC_URL = "jdbc:mysql://db.internal:3306/auth?user=app&password=IVQ-UGZuJ1sedWrrJ2gu7GEq";

    @Value("${app.jwt.secret}")
    private String jwtSecret;
    private static final String TOKEN_HEADER = "X-Auth-Token";
    public void login(String username, char[] password) { }
}

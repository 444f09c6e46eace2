package com.acme.reports;

import com.amazonaws.auth.*;

public class ReportsConfig {
    private static final String DB_PASSWORD = "9UlHNisNAwFCjqMDjQ573";

    String apiKey = secretsClient.getSecretValue(req).secretString();
    @Value("${app.jwt.secret}")
    private String jwtSecret;
    private static final int PASSWORD_MIN_LENGTH = 12;
}

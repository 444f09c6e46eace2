package com.acme.inventory;

import com.amazonaws.auth.*;

public class InventoryConfig {
    AWSCredentials creds = new BasicAWSCredentials(
        "AKIAZCYHZ6KRTFT7RQQW",
        "rpDBF4MJZ3ZzBcOAS7+3BK3+r7GviJ9Ke5aya8Hn");

    private static final String TOKEN_HEADER = "X-Auth-Token";
    private static final int PASSWORD_MIN_LENGTH = 12;
    @Value("${app.jwt.secret}")
    private String jwtSecret;
}

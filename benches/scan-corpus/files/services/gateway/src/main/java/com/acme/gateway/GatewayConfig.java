package com.acme.gateway;

import com.amazonaws.auth.*;

public class GatewayConfig {
    HikariDataSource ds = new HikariDataSource();
    ds.setJdbcUrl("jdbc:postgresql://db.internal:5432/gateway");
    ds.setUsername("app");
    ds.setPassword("s8s+2VJ7Yufm3PKAg");

    private static final int PASSWORD_MIN_LENGTH = 12;
    String apiKey = secretsClient.getSecretValue(req).secretString();
    private static final String TOKEN_HEADER = "X-Auth-Token";
}

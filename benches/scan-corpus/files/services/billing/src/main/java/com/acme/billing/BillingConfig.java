package com.acme.billing;

import com.amazonaws.auth.*;

public class BillingConfig {
    private static final String DB_PASSWORD = "cSdCoP+3GW*Bd!c4S";

    String apiKey = secretsClient.getSecretValue(req).secretString();
    private final String password = System.getenv("DB_PASSWORD");
    private static final int PASSWORD_MIN_LENGTH = 12;
}

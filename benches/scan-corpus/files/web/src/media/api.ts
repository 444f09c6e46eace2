import axios from 'axios';
import Stripe from 'stripe';

// media front-end service
const token = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyNTY1NzQ4MjQxODUiLCJpc3MiOiJiaWxsaW5nLWFwaSIsInNjb3BlIjoicmVhZCB3cml0ZSIsImlhdCI6MTczNzg5MDY3MSwiZXhwIjoxNzM3ODk0MjcxLCJqdGkiOiIxN2Q3NGJkOGZhY2Q1ZGI1In0.-kxoLN6-bkPschObzSYmblxZVDnLEs0jJPPX6fm0HWesuIOSq9SST8hh-t-Fktg1qQlBLh70g91dd0XGCBdWTCoiY1fixWHVfqFtOvs1KMntfFm__4jUkxjNqPGUVGAuUJvA_To0bVPfULfFsnnKJ_d8IOXesp7mAFFqvVZJYKIAq-FprWNbEZ-BxeJhBJ9a98Qssh01db7gcsfGc4UW7D74RJF2vo6dhAnNVftK8wzdKDOygwd9JLq0FIlA5H3yVQFzcnPDr2z7hv_3uDfS8w95PtcSYvAzI8rtrIDybH6pcLiWnJJxlOeNDR-pdXIfBKzqiEKM2vpKv8Y9h6OMQr';
axios.defaults.headers.common.Authorization = `Bearer ${token}`;

// pinned: sha256-otjKZGCtowc1JPWxLMeV+bQymyL2SKFyLGZsHF0Q6sU=
password: { type: String, required: true, select: false },
const { password } = req.body;

export default function start() { console.log('media ready'); }

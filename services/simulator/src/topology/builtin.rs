//! Built-in topologies shaped like four well-known benchmark systems: their service names, the
//! operations and who calls whom as in the real code (the Nezha fixtures in
//! `tests/fixtures/nezha/*.summary.json` list the real call graphs of Online Boutique and
//! TrainTicket), request mixes like their load generators, and latencies of the right order.
//! Databases are not instrumented (their callers' client spans carry `db.system`).

use super::{Builder, OpRef, Protocol, Topology};

/// Google's Online Boutique (`microservices-demo`): a Go HTTP frontend over gRPC services;
/// request mix of its Locust load generator (index 1, setCurrency 2, browseProduct 10,
/// addToCart 2, viewCart 3, checkout 1). Calls as in `frontend/handlers.go` and
/// `checkoutservice/main.go`.
pub fn online_boutique() -> Topology {
    use Protocol::{Grpc, Http};
    let mut b = Builder::new("onlineboutique", "boutique");
    b.timeout_ms = 2_000.0;
    b.retries = 1;
    let redis = b.database("redis-cart", "redis", "redis-cart", 0.3);
    let frontend = b.service("frontend", Http, 1, 64.0);
    let catalog = b.service("productcatalogservice", Grpc, 1, 48.0);
    let currency = b.service("currencyservice", Grpc, 1, 96.0);
    let cart = b.service("cartservice", Grpc, 1, 128.0);
    let reco = b.service("recommendationservice", Grpc, 1, 160.0);
    let shipping = b.service("shippingservice", Grpc, 1, 32.0);
    let checkout = b.service("checkoutservice", Grpc, 1, 48.0);
    let payment = b.service("paymentservice", Grpc, 1, 96.0);
    let email = b.service("emailservice", Grpc, 1, 128.0);
    let ads = b.service("adservice", Grpc, 1, 320.0);

    let list_products = b.op(
        catalog,
        "hipstershop.ProductCatalogService/ListProducts",
        2.5,
        0.4,
    );
    let get_product = b.op(
        catalog,
        "hipstershop.ProductCatalogService/GetProduct",
        1.8,
        0.4,
    );
    let currencies = b.op(
        currency,
        "hipstershop.CurrencyService/GetSupportedCurrencies",
        0.8,
        0.4,
    );
    let convert = b.op(currency, "hipstershop.CurrencyService/Convert", 0.9, 0.4);
    let get_cart = b.op(cart, "hipstershop.CartService/GetCart", 1.5, 0.5);
    let add_item = b.op(cart, "hipstershop.CartService/AddItem", 2.0, 0.5);
    let empty_cart = b.op(cart, "hipstershop.CartService/EmptyCart", 1.5, 0.5);
    let recommend = b.op(
        reco,
        "hipstershop.RecommendationService/ListRecommendations",
        3.0,
        0.5,
    );
    let quote = b.op(shipping, "hipstershop.ShippingService/GetQuote", 1.2, 0.4);
    let ship = b.op(shipping, "hipstershop.ShippingService/ShipOrder", 1.5, 0.4);
    let place_order = b.op(checkout, "hipstershop.CheckoutService/PlaceOrder", 4.0, 0.5);
    let charge = b.op(payment, "hipstershop.PaymentService/Charge", 1.5, 0.5);
    let send_email = b.op(
        email,
        "hipstershop.EmailService/SendOrderConfirmation",
        3.0,
        0.5,
    );
    let get_ads = b.op(ads, "hipstershop.AdService/GetAds", 1.5, 0.6);

    let redis_get = b.stmt(redis, "GET");
    let redis_set = b.stmt(redis, "SET");
    b.seq(get_cart, &[redis_get]);
    b.seq(add_item, &[redis_get, redis_set]);
    b.seq(empty_cart, &[redis_set]);
    b.seq(recommend, &[list_products]);
    let ad_call = optional(b.call(get_ads, 1.0, (1, 1)));

    let index = b.op(frontend, "GET /", 2.0, 0.5);
    b.seq(index, &[currencies, list_products, get_cart]);
    let conversions = vec![b.call(convert, 1.0, (9, 9))];
    b.stage(index, false, conversions);
    b.stage(index, false, vec![ad_call.clone()]);

    let set_currency = b.op(frontend, "POST /setCurrency", 1.0, 0.4);

    let product = b.op(frontend, "GET /product/{id}", 2.0, 0.5);
    b.seq(product, &[get_product, currencies, get_cart, convert]);
    let reco_call = optional(b.call(recommend, 1.0, (1, 1)));
    b.stage(product, false, vec![reco_call.clone()]);
    b.stage(product, false, vec![ad_call]);

    let add_to_cart = b.op(frontend, "POST /cart", 1.5, 0.4);
    b.seq(add_to_cart, &[get_product, add_item]);

    let view_cart = b.op(frontend, "GET /cart", 2.0, 0.5);
    b.seq(view_cart, &[currencies, get_cart]);
    b.stage(view_cart, false, vec![reco_call.clone()]);
    b.seq(view_cart, &[quote]);
    let items = vec![
        b.call(get_product, 1.0, (1, 3)),
        b.call(convert, 1.0, (1, 3)),
    ];
    b.stage(view_cart, false, items);

    b.seq(place_order, &[get_cart]);
    // The Nezha deployment's checkout converts no currency (no such edge in its traces).
    let prep = vec![b.call(get_product, 1.0, (1, 3))];
    b.stage(place_order, false, prep);
    b.seq(place_order, &[quote, charge, ship, empty_cart]);
    let mail = optional(b.call(send_email, 1.0, (1, 1)));
    b.stage(place_order, false, vec![mail]);

    let checkout_route = b.op(frontend, "POST /cart/checkout", 2.0, 0.5);
    b.seq(checkout_route, &[place_order]);
    b.stage(checkout_route, false, vec![reco_call]);
    b.seq(checkout_route, &[currencies]);

    b.entry(index, 1.0);
    b.entry(set_currency, 2.0);
    b.entry(product, 10.0);
    b.entry(add_to_cart, 2.0);
    b.entry(view_cart, 3.0);
    b.entry(checkout_route, 1.0);
    b.finish()
}

/// FudanSELab's TrainTicket: Spring Boot services behind `ts-gateway-service`, each with its
/// own MongoDB; the calls of the Nezha fixture (`trainticket-2023-01-29-0850-faultfree`) and its
/// mix of entry routes.
pub fn train_ticket() -> Topology {
    use Protocol::Http;
    let mut b = Builder::new("trainticket", "train-ticket");
    b.timeout_ms = 5_000.0;
    b.retries = 0;
    let svc = |b: &mut Builder, name: &str| b.service(name, Http, 1, 420.0);
    let gateway = svc(&mut b, "ts-gateway-service");
    let auth = svc(&mut b, "ts-auth-service");
    let verification = svc(&mut b, "ts-verification-code-service");
    let user = svc(&mut b, "ts-user-service");
    let travel = svc(&mut b, "ts-travel-service");
    let travel2 = svc(&mut b, "ts-travel2-service");
    let basic = svc(&mut b, "ts-basic-service");
    let station = svc(&mut b, "ts-station-service");
    let train = svc(&mut b, "ts-train-service");
    let route = svc(&mut b, "ts-route-service");
    let price = svc(&mut b, "ts-price-service");
    let seat = svc(&mut b, "ts-seat-service");
    let config = svc(&mut b, "ts-config-service");
    let order = svc(&mut b, "ts-order-service");
    let order_other = svc(&mut b, "ts-order-other-service");
    let food = svc(&mut b, "ts-food-service");
    let station_food = svc(&mut b, "ts-station-food-service");
    let train_food = svc(&mut b, "ts-train-food-service");
    let execute = svc(&mut b, "ts-execute-service");
    let preserve = svc(&mut b, "ts-preserve-service");
    let preserve_other = svc(&mut b, "ts-preserve-other-service");
    let security = svc(&mut b, "ts-security-service");
    let contacts = svc(&mut b, "ts-contacts-service");
    let inside_payment = svc(&mut b, "ts-inside-payment-service");
    let payment = svc(&mut b, "ts-payment-service");

    let mongo = |b: &mut Builder, name: &str| b.database(name, "mongodb", name, 1.5);
    let find = |b: &Builder, db: usize| b.stmt(db, "find");
    let m_auth = mongo(&mut b, "ts-auth-mongo");
    let m_user = mongo(&mut b, "ts-user-mongo");
    let m_travel = mongo(&mut b, "ts-travel-mongo");
    let m_travel2 = mongo(&mut b, "ts-travel2-mongo");
    let m_station = mongo(&mut b, "ts-station-mongo");
    let m_train = mongo(&mut b, "ts-train-mongo");
    let m_route = mongo(&mut b, "ts-route-mongo");
    let m_price = mongo(&mut b, "ts-price-mongo");
    let m_config = mongo(&mut b, "ts-config-mongo");
    let m_order = mongo(&mut b, "ts-order-mongo");
    let m_order_other = mongo(&mut b, "ts-order-other-mongo");
    let m_food = mongo(&mut b, "ts-food-mongo");
    let m_contacts = mongo(&mut b, "ts-contacts-mongo");
    let m_payment = mongo(&mut b, "ts-payment-mongo");

    let leaf = |b: &mut Builder, s: usize, name: &str, ms: f64, db: usize| -> OpRef {
        let op = b.op(s, name, ms, 0.5);
        let q = find(b, db);
        b.seq(op, &[q]);
        op
    };
    let station_q = leaf(
        &mut b,
        station,
        "GET /api/v1/stationservice/stations/id/{name}",
        3.0,
        m_station,
    );
    let train_q = leaf(
        &mut b,
        train,
        "GET /api/v1/trainservice/trains/{id}",
        3.0,
        m_train,
    );
    let route_q = leaf(
        &mut b,
        route,
        "GET /api/v1/routeservice/routes/{routeId}",
        4.0,
        m_route,
    );
    let price_q = leaf(
        &mut b,
        price,
        "GET /api/v1/priceservice/prices/{routeId}/{trainType}",
        3.0,
        m_price,
    );
    let config_q = leaf(
        &mut b,
        config,
        "GET /api/v1/configservice/configs/{configName}",
        3.0,
        m_config,
    );
    let order_q = leaf(
        &mut b,
        order,
        "POST /api/v1/orderservice/order/tickets",
        5.0,
        m_order,
    );
    let order_sec = leaf(
        &mut b,
        order,
        "GET /api/v1/orderservice/order/security/{checkDate}/{accountId}",
        4.0,
        m_order,
    );
    let order_get = leaf(
        &mut b,
        order,
        "GET /api/v1/orderservice/order/{orderId}",
        4.0,
        m_order,
    );
    let oo_q = leaf(
        &mut b,
        order_other,
        "POST /api/v1/orderOtherService/orderOther/tickets",
        5.0,
        m_order_other,
    );
    let oo_sec = leaf(
        &mut b,
        order_other,
        "GET /api/v1/orderOtherService/orderOther/security/{checkDate}/{accountId}",
        4.0,
        m_order_other,
    );
    let oo_get = leaf(
        &mut b,
        order_other,
        "GET /api/v1/orderOtherService/orderOther/{orderId}",
        4.0,
        m_order_other,
    );
    let contacts_q = leaf(
        &mut b,
        contacts,
        "GET /api/v1/contactservice/contacts/{id}",
        3.0,
        m_contacts,
    );
    let user_q = leaf(
        &mut b,
        user,
        "GET /api/v1/userservice/users/id/{userId}",
        4.0,
        m_user,
    );
    let verify = b.op(
        verification,
        "GET /api/v1/verifycode/verify/{verifyCode}",
        4.0,
        0.5,
    );
    let station_food_q = leaf(
        &mut b,
        station_food,
        "GET /api/v1/stationfoodservice/stationfoodstores",
        4.0,
        m_food,
    );
    let train_food_q = leaf(
        &mut b,
        train_food,
        "GET /api/v1/trainfoodservice/trainfoods/{tripId}",
        4.0,
        m_food,
    );
    let payment_q = leaf(
        &mut b,
        payment,
        "POST /api/v1/paymentservice/payment",
        4.0,
        m_payment,
    );

    let seat_left = b.op(
        seat,
        "POST /api/v1/seatservice/seats/left_tickets",
        6.0,
        0.5,
    );
    let seat_calls = vec![
        b.call(order_q, 0.87, (1, 1)),
        b.call(oo_q, 0.13, (1, 1)),
        b.call(config_q, 1.0, (1, 1)),
    ];
    b.stage(seat_left, false, seat_calls);

    let basic_q = b.op(basic, "POST /api/v1/basicservice/basic/travel", 5.0, 0.5);
    let basic_calls = vec![
        b.call(station_q, 1.0, (1, 2)),
        b.call(train_q, 1.0, (1, 1)),
        b.call(route_q, 1.0, (1, 1)),
        b.call(price_q, 1.0, (1, 1)),
    ];
    b.stage(basic_q, false, basic_calls);

    let travel_left = b.op(travel, "POST /api/v1/travelservice/trips/left", 8.0, 0.5);
    let q = find(&b, m_travel);
    b.seq(travel_left, &[q]);
    let calls = vec![b.call(basic_q, 1.0, (1, 2)), b.call(seat_left, 1.0, (3, 6))];
    b.stage(travel_left, false, calls);
    let travel_route = b.op(
        travel,
        "GET /api/v1/travelservice/routes/{tripId}",
        4.0,
        0.5,
    );
    let q = find(&b, m_travel);
    b.seq(travel_route, &[q, route_q]);
    let travel_detail = b.op(travel, "POST /api/v1/travelservice/trip_detail", 6.0, 0.5);
    let q = find(&b, m_travel);
    b.seq(travel_detail, &[q, basic_q, seat_left]);

    let travel2_left = b.op(travel2, "POST /api/v1/travel2service/trips/left", 8.0, 0.5);
    let q = find(&b, m_travel2);
    b.seq(travel2_left, &[q]);
    let calls = vec![b.call(basic_q, 1.0, (1, 2)), b.call(seat_left, 1.0, (1, 2))];
    b.stage(travel2_left, false, calls);
    let travel2_detail = b.op(travel2, "POST /api/v1/travel2service/trip_detail", 6.0, 0.5);
    let q = find(&b, m_travel2);
    b.seq(travel2_detail, &[q, basic_q, seat_left]);

    let login = b.op(auth, "POST /api/v1/users/login", 15.0, 0.4);
    let q = find(&b, m_auth);
    b.seq(login, &[verify, q]);

    let foods = b.op(
        food,
        "GET /api/v1/foodservice/foods/{date}/{startStation}/{endStation}/{tripId}",
        6.0,
        0.5,
    );
    b.seq(foods, &[train_food_q, travel_route, station_food_q]);

    let collect = b.op(
        execute,
        "GET /api/v1/executeservice/execute/collected/{orderId}",
        5.0,
        0.5,
    );
    let calls = vec![b.call(order_get, 0.7, (1, 2)), b.call(oo_get, 0.5, (1, 2))];
    b.stage(collect, false, calls);

    let check = b.op(
        security,
        "GET /api/v1/securityservice/securityConfigs/{accountId}",
        4.0,
        0.5,
    );
    b.seq(check, &[order_sec, oo_sec]);

    let preserve_op = b.op(preserve, "POST /api/v1/preserveservice/preserve", 10.0, 0.5);
    b.seq(preserve_op, &[check, contacts_q, travel_detail, basic_q]);

    let preserve_other_op = b.op(
        preserve_other,
        "POST /api/v1/preserveotherservice/preserve",
        10.0,
        0.5,
    );
    b.seq(
        preserve_other_op,
        &[check, contacts_q, travel2_detail, basic_q, user_q],
    );

    let pay = b.op(
        inside_payment,
        "POST /api/v1/inside_pay_service/inside_payment",
        6.0,
        0.5,
    );
    let calls = vec![
        b.call(order_get, 0.6, (1, 1)),
        b.call(oo_get, 0.4, (1, 1)),
        b.call(payment_q, 0.7, (1, 1)),
    ];
    b.stage(pay, false, calls);

    for (route_name, target, weight) in [
        ("POST /api/v1/travelservice/trips/left", travel_left, 22.0),
        ("POST /api/v1/travel2service/trips/left", travel2_left, 14.0),
        ("POST /api/v1/users/login", login, 8.0),
        ("GET /api/v1/foodservice/foods", foods, 8.0),
        ("GET /api/v1/executeservice/execute/collected", collect, 8.0),
        ("POST /api/v1/preserveservice/preserve", preserve_op, 7.0),
        ("POST /api/v1/inside_pay_service/inside_payment", pay, 3.0),
        (
            "POST /api/v1/preserveotherservice/preserve",
            preserve_other_op,
            1.0,
        ),
    ] {
        let op = b.op(gateway, route_name, 1.5, 0.4);
        b.seq(op, &[target]);
        b.entry(op, weight);
    }
    b.finish()
}

/// Weaveworks' Sock Shop: a Node.js front-end over Go and Java services with MySQL and MongoDB,
/// and shipping requests through RabbitMQ to `queue-master`.
pub fn sock_shop() -> Topology {
    use Protocol::Http;
    let mut b = Builder::new("sockshop", "sock-shop");
    b.timeout_ms = 3_000.0;
    b.retries = 0;
    let front = b.service("front-end", Http, 1, 96.0);
    let catalogue = b.service("catalogue", Http, 1, 16.0);
    let carts = b.service("carts", Http, 1, 380.0);
    let orders = b.service("orders", Http, 1, 400.0);
    let user = b.service("user", Http, 1, 16.0);
    let payment = b.service("payment", Http, 1, 12.0);
    let shipping = b.service("shipping", Http, 1, 360.0);
    let queue_master = b.service("queue-master", Http, 1, 340.0);
    let catalogue_db = b.database("catalogue-db", "mysql", "socksdb", 1.2);
    let carts_db = b.database("carts-db", "mongodb", "carts-db", 1.5);
    let orders_db = b.database("orders-db", "mongodb", "orders-db", 1.8);
    let user_db = b.database("user-db", "mongodb", "user-db", 1.2);

    let ship_task = b.op(queue_master, "shipping-task process", 15.0, 0.5);
    let publish = b.queue("rabbitmq", "rabbitmq", "shipping-task", Some(ship_task));

    let q = b.stmt(catalogue_db, "SELECT");
    let list = b.op(catalogue, "GET /catalogue", 2.0, 0.5);
    b.seq(list, &[q]);
    let item = b.op(catalogue, "GET /catalogue/{id}", 1.5, 0.5);
    b.seq(item, &[q]);
    let size = b.op(catalogue, "GET /catalogue/size", 1.0, 0.5);
    b.seq(size, &[q]);

    let carts_find = b.stmt(carts_db, "find");
    let carts_update = b.stmt(carts_db, "update");
    let cart_get = b.op(carts, "GET /carts/{customerId}/items", 6.0, 0.5);
    b.seq(cart_get, &[carts_find]);
    let cart_add = b.op(carts, "POST /carts/{customerId}/items", 8.0, 0.5);
    b.seq(cart_add, &[carts_find, carts_update]);

    let users_find = b.stmt(user_db, "find");
    let login_op = b.op(user, "GET /login", 3.0, 0.5);
    b.seq(login_op, &[users_find]);
    let customer = b.op(user, "GET /customers/{id}", 1.5, 0.5);
    b.seq(customer, &[users_find]);
    let address = b.op(user, "GET /addresses/{id}", 1.5, 0.5);
    b.seq(address, &[users_find]);
    let card = b.op(user, "GET /cards/{id}", 1.5, 0.5);
    b.seq(card, &[users_find]);

    let authorise = b.op(payment, "POST /paymentAuth", 1.0, 0.4);
    let ship = b.op(shipping, "POST /shipping", 5.0, 0.5);
    b.seq(ship, &[publish]);

    let order_create = b.op(orders, "POST /orders", 10.0, 0.5);
    let lookups = vec![
        b.call(customer, 1.0, (1, 1)),
        b.call(address, 1.0, (1, 1)),
        b.call(card, 1.0, (1, 1)),
        b.call(cart_get, 1.0, (1, 1)),
    ];
    b.stage(order_create, true, lookups);
    let insert = b.stmt(orders_db, "insert");
    b.seq(order_create, &[authorise, ship, insert]);

    let home = b.op(front, "GET /", 1.5, 0.5);
    b.seq(home, &[size]);
    let browse = b.op(front, "GET /catalogue", 2.0, 0.5);
    b.seq(browse, &[list]);
    let detail = b.op(front, "GET /detail.html", 2.0, 0.5);
    b.seq(detail, &[item]);
    let login = b.op(front, "GET /login", 2.0, 0.5);
    b.seq(login, &[login_op]);
    let add = b.op(front, "POST /cart", 2.0, 0.5);
    b.seq(add, &[item, cart_add]);
    let basket = b.op(front, "GET /basket.html", 2.0, 0.5);
    let calls = vec![b.call(cart_get, 1.0, (1, 1)), b.call(customer, 1.0, (1, 1))];
    b.stage(basket, true, calls);
    let order = b.op(front, "POST /orders", 2.0, 0.5);
    b.seq(order, &[order_create]);

    b.entry(home, 3.0);
    b.entry(browse, 4.0);
    b.entry(detail, 4.0);
    b.entry(login, 1.0);
    b.entry(add, 2.0);
    b.entry(basket, 2.0);
    b.entry(order, 1.0);
    b.finish()
}

/// DeathStarBench's social network: nginx over C++ Thrift services with memcached, Redis and
/// MongoDB; home-timeline fan-out through RabbitMQ to `write-home-timeline-service`; the wrk2
/// mix (60 % read home timeline, 30 % read user timeline, 10 % compose).
pub fn social_network() -> Topology {
    use Protocol::{Http, Thrift};
    let mut b = Builder::new("socialnetwork", "social-network");
    b.timeout_ms = 1_000.0;
    b.retries = 0;
    let nginx = b.service("nginx-web-server", Http, 1, 32.0);
    let s = |b: &mut Builder, name: &str| b.service(name, Thrift, 1, 24.0);
    let compose = s(&mut b, "compose-post-service");
    let text = s(&mut b, "text-service");
    let url = s(&mut b, "url-shorten-service");
    let mention = s(&mut b, "user-mention-service");
    let media = s(&mut b, "media-service");
    let unique = s(&mut b, "unique-id-service");
    let user = s(&mut b, "user-service");
    let post_storage = s(&mut b, "post-storage-service");
    let user_timeline = s(&mut b, "user-timeline-service");
    let home_timeline = s(&mut b, "home-timeline-service");
    let social_graph = s(&mut b, "social-graph-service");
    let write_home = s(&mut b, "write-home-timeline-service");

    let url_mongo = b.database("url-shorten-mongodb", "mongodb", "url-shorten", 1.2);
    let user_mc = b.database("user-memcached", "memcached", "user-memcached", 0.2);
    let user_mongo = b.database("user-mongodb", "mongodb", "user", 1.2);
    let post_mc = b.database(
        "post-storage-memcached",
        "memcached",
        "post-storage-memcached",
        0.2,
    );
    let post_mongo = b.database("post-storage-mongodb", "mongodb", "post", 1.5);
    let ut_redis = b.database("user-timeline-redis", "redis", "user-timeline-redis", 0.25);
    let ut_mongo = b.database("user-timeline-mongodb", "mongodb", "user-timeline", 1.5);
    let ht_redis = b.database("home-timeline-redis", "redis", "home-timeline-redis", 0.25);
    let sg_redis = b.database("social-graph-redis", "redis", "social-graph-redis", 0.25);
    let sg_mongo = b.database("social-graph-mongodb", "mongodb", "social-graph", 1.5);
    let media_mongo = b.database("media-mongodb", "mongodb", "media", 1.2);

    let followers = b.op(social_graph, "GetFollowers", 0.5, 0.5);
    let calls = vec![
        b.call(b.stmt(sg_redis, "GET"), 1.0, (1, 1)),
        b.call(b.stmt(sg_mongo, "find"), 0.2, (1, 1)),
    ];
    b.stage(followers, false, calls);
    let follow = b.op(social_graph, "Follow", 0.6, 0.5);
    let calls = vec![
        b.call(b.stmt(sg_mongo, "update"), 1.0, (2, 2)),
        b.call(b.stmt(sg_redis, "SET"), 1.0, (2, 2)),
    ];
    b.stage(follow, true, calls);

    let write_home_op = b.op(write_home, "WriteHomeTimeline", 0.6, 0.5);
    let ht_set = b.stmt(ht_redis, "SET");
    b.seq(write_home_op, &[followers, ht_set]);
    let publish = b.queue(
        "rabbitmq",
        "rabbitmq",
        "write-home-timeline",
        Some(write_home_op),
    );

    let shorten = b.op(url, "ComposeUrls", 0.4, 0.5);
    let calls = vec![b.call(b.stmt(url_mongo, "insert"), 0.5, (1, 1))];
    b.stage(shorten, false, calls);
    let mentions = b.op(mention, "ComposeUserMentions", 0.4, 0.5);
    let calls = vec![
        b.call(b.stmt(user_mc, "GET"), 0.6, (1, 1)),
        b.call(b.stmt(user_mongo, "find"), 0.2, (1, 1)),
    ];
    b.stage(mentions, false, calls);
    let compose_text = b.op(text, "ComposeText", 0.4, 0.5);
    let calls = vec![b.call(shorten, 1.0, (1, 1)), b.call(mentions, 1.0, (1, 1))];
    b.stage(compose_text, true, calls);
    let compose_media = b.op(media, "ComposeMedia", 0.3, 0.5);
    let calls = vec![b.call(b.stmt(media_mongo, "insert"), 0.3, (1, 1))];
    b.stage(compose_media, false, calls);
    let unique_id = b.op(unique, "ComposeUniqueId", 0.2, 0.4);
    let creator = b.op(user, "ComposeCreatorWithUserId", 0.3, 0.4);
    let store = b.op(post_storage, "StorePost", 0.5, 0.5);
    let calls = vec![b.call(b.stmt(post_mongo, "insert"), 1.0, (1, 1))];
    b.stage(store, false, calls);
    let read_posts = b.op(post_storage, "ReadPosts", 0.6, 0.5);
    let calls = vec![
        b.call(b.stmt(post_mc, "GET"), 1.0, (1, 1)),
        b.call(b.stmt(post_mongo, "find"), 0.2, (1, 1)),
    ];
    b.stage(read_posts, false, calls);
    let write_ut = b.op(user_timeline, "WriteUserTimeline", 0.4, 0.5);
    let calls = vec![
        b.call(b.stmt(ut_mongo, "update"), 1.0, (1, 1)),
        b.call(b.stmt(ut_redis, "SET"), 1.0, (1, 1)),
    ];
    b.stage(write_ut, true, calls);
    let read_ut = b.op(user_timeline, "ReadUserTimeline", 0.5, 0.5);
    let calls = vec![
        b.call(b.stmt(ut_redis, "GET"), 1.0, (1, 1)),
        b.call(b.stmt(ut_mongo, "find"), 0.2, (1, 1)),
    ];
    b.stage(read_ut, false, calls);
    b.seq(read_ut, &[read_posts]);
    let read_ht = b.op(home_timeline, "ReadHomeTimeline", 0.5, 0.5);
    let ht_get = b.stmt(ht_redis, "GET");
    b.seq(read_ht, &[ht_get, read_posts]);

    let compose_post = b.op(compose, "ComposePost", 0.5, 0.5);
    let calls = vec![
        b.call(compose_text, 1.0, (1, 1)),
        b.call(compose_media, 1.0, (1, 1)),
        b.call(unique_id, 1.0, (1, 1)),
        b.call(creator, 1.0, (1, 1)),
    ];
    b.stage(compose_post, true, calls);
    let calls = vec![
        b.call(store, 1.0, (1, 1)),
        b.call(write_ut, 1.0, (1, 1)),
        b.call(publish, 1.0, (1, 1)),
    ];
    b.stage(compose_post, true, calls);

    let follow_user = b.op(user, "Follow", 0.3, 0.4);
    b.seq(follow_user, &[follow]);

    for (route, target, weight) in [
        ("GET /wrk2-api/home-timeline/read", read_ht, 60.0),
        ("GET /wrk2-api/user-timeline/read", read_ut, 30.0),
        ("POST /wrk2-api/post/compose", compose_post, 10.0),
        ("POST /wrk2-api/user/follow", follow_user, 2.0),
    ] {
        let op = b.op(nginx, route, 0.4, 0.4);
        b.seq(op, &[target]);
        b.entry(op, weight);
    }
    b.finish()
}

fn optional(mut call: super::Call) -> super::Call {
    call.optional = true;
    call
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_dags_with_the_real_edges() {
        for t in [
            online_boutique(),
            train_ticket(),
            sock_shop(),
            social_network(),
        ] {
            t.validate().expect("valid");
        }
        let ob = online_boutique();
        let idx = |n: &str| ob.service_index(n).expect("service");
        // The 13 cross-service edges of the Nezha Online Boutique fixture, and no others.
        let expected = [
            ("checkoutservice", "cartservice"),
            ("checkoutservice", "emailservice"),
            ("checkoutservice", "paymentservice"),
            ("checkoutservice", "productcatalogservice"),
            ("checkoutservice", "shippingservice"),
            ("frontend", "adservice"),
            ("frontend", "cartservice"),
            ("frontend", "checkoutservice"),
            ("frontend", "currencyservice"),
            ("frontend", "productcatalogservice"),
            ("frontend", "recommendationservice"),
            ("frontend", "shippingservice"),
            ("recommendationservice", "productcatalogservice"),
        ];
        for (a, b) in expected {
            assert!(ob.has_edge(idx(a), idx(b)), "{a} -> {b}");
        }
        assert_eq!(ob.service_edges().len(), expected.len());

        let tt = train_ticket();
        let idx = |n: &str| tt.service_index(n).expect("service");
        for (a, b) in [
            ("ts-gateway-service", "ts-travel-service"),
            ("ts-travel-service", "ts-seat-service"),
            ("ts-seat-service", "ts-config-service"),
            ("ts-basic-service", "ts-station-service"),
            ("ts-preserve-other-service", "ts-user-service"),
            ("ts-auth-service", "ts-verification-code-service"),
            ("ts-inside-payment-service", "ts-payment-service"),
        ] {
            assert!(tt.has_edge(idx(a), idx(b)), "{a} -> {b}");
        }
        assert_eq!(
            tt.services.iter().filter(|s| s.is_service()).count(),
            25,
            "the 25 services of the fixture"
        );
    }
}

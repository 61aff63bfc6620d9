"""What generated data is made of: strings that break naive code, and pools of plausible values."""

from __future__ import annotations

from typing import Any

# Names that break naive code: emoji, CJK, RTL, accents, quotes, backslashes, odd spaces.
NAMES = [
    "Newsletter",
    "VIP 🌟 Customers",
    "Clientes de España",
    "日本のお客様",
    "عملاء مميزون",
    "לקוחות חוזרים",
    "Ünïcödé «Guillemets»",
    'He said "hi"',
    "Back\\slash\\List",
    "Préférences été",
    "Emoji 🎉🔥",
    "Ελληνικοί πελάτες",
    "Ñandú & Co",
    "Zero\u200bwidth joiner",
    "  leading spaces",
    "trailing space ",
    "'single' quotes",
    "Müller\u2019s Öko-Liste",
    "中文 订阅者",
    "한국 고객",
    "Русские клиенты",
    "Sample Data List",
    "Preview List",
    "SMS Subscribers",
    "Shopify Customers",
    "🙂",
    "Percent %20 & ampersand",
    "Comma, (parens) [brackets]",
]
CAMPAIGN_NAMES = [
    "Black Friday 🛍️",
    "Soldes d'été",
    "春のセール",
    "تخفيضات الصيف",
    'The "Big" Sale',
    "Back\\slash promo",
    "Weekly Newsletter #",
    "Copy of Weekly Newsletter #",
    "Ünïcödé launch",
    "Рассылка",
    "Cyber Monday ⚡",
    "Welcome back, friend",
    "Restock: 🧦 socks",
    "Holiday 🎄 Gift Guide",
    "עדכון חודשי",
    "Flash sale 50% off",
    "Test campaign (do not send)",
]
FLOW_NAMES = [
    "Welcome Series 👋",
    "Abandoned Cart \u2013 Reminder",
    "Post-Purchase «Merci»",
    "Winback 再来店",
    "Browse Abandonment",
    "Birthday 🎂",
    'Flow "quoted"',
    "Back\\slash Flow",
    "Sunset unengaged",
    "Back in Stock",
    "Price Drop 📉",
    "Customer Thank You",
    "استعادة السلة",
    "VIP ✨ Tier",
]
SUBJECTS = [
    "Your cart misses you 🛒",
    "¡Última oportunidad!",
    "新着アイテムのお知らせ",
    "50% off — today only",
    'Don\'t miss "the drop"',
    "C:\\Users\\you deserve a treat",
    "Привет! Новая коллекция",
    "🎁🎁🎁",
    "تخفيضات حصرية لك",
    "Merci pour votre commande n°1234",
    "Re: your order",
    "",
]
DOMAINS = ["gmail.com", "yahoo.co.jp", "outlook.com", "icloud.com", "example.org", "xn--bcher-kva.example"]
CLIENTS = [
    ("Apple Mail", "iOS", "Mobile"),
    ("Gmail", "Android", "Mobile"),
    ("Outlook", "Windows", "Desktop"),
    ("Gmail", "Web", "Webmail"),
    ("Thunderbird", "Linux", "Desktop"),
]
URLS = [
    "https://shop.example/products/chaussures-été?utm_source=klaviyo&utm_medium=email",
    "https://shop.example/コレクション/new",
    "https://shop.example/cart?items=1,2,3&promo=%F0%9F%8E%89",
    'https://shop.example/a"quote',
    "https://shop.example/",
]
CUSTOM_METRIC_NAMES = [
    "Événement personnalisé",
    "カスタム イベント",
    "Lead 🚀 Captured",
    'Quote "this" metric',
    "back\\slash metric",
    "Viewed Wishlist",
    "Loyalty Points Earned",
    "تسجيل الدخول",
]
OTHER_KLAVIYO_METRICS = [
    "Active on Site",
    "Viewed Product",
    "Subscribed to List",
    "Unsubscribed from List",
    "Unsubscribed",
    "Received SMS",
    "Clicked SMS",
    "Received Push",
    "Opened Push",
    "Updated Email Preferences",
    "Subscribed to Back in Stock",
    "Form submitted by profile",
    "Viewed Collection",
]
SHOPIFY_METRICS = [
    "Placed Order",
    "Ordered Product",
    "Fulfilled Order",
    "Cancelled Order",
    "Refunded Order",
    "Checkout Started",
]
PRODUCTS = ["Chaussures d'été", "保温ボトル", "Socks 🧦", 'The "Classic" Tee', "Back\\pack", "Ñ-Hoodie"]
# What campaign messages say (messages.py): senders, preview texts, SMS bodies, push titles and bodies.
SENDERS = [
    ("bonjour@eclair.example", "Boutique Éclair 🌸"),
    ("news@eclair.example", 'Éclair "News"'),
    ("no-reply@eclair.example", None),
]
PREVIEW_TEXTS = ["Jusqu'à -50 % 🎉", "Nouveautés de la semaine", None, "返品無料・送料無料", "Line one\nline two", " "]
SMS_BODIES = [
    "Boutique Éclair : -20 % ce week-end 🛍️ https://shop.example/s STOP au 36111",
    "春のセール開始 https://shop.example/s",
    'Reply "STOP" to opt out \\ back',
    "",
]
PUSH_TEXTS = [("Soldes 🔥", "Jusqu'à -50 %"), ("新着", "新しいコレクション"), (None, "Body only"), ("Title only", None)]
MEDIA_URLS = ["https://cdn.shop.example/média/promo.png", "https://cdn.shop.example/a%20b.gif"]
# What profiles are made of (profiles.py, consent.py): few enough names that many profiles share them.
FIRST_NAMES = [
    "Sarah",
    "Zoë",
    "José",
    "Anne-Marie",
    "李",
    "محمد",
    "Ólafur",
    "Сергей",
    "Jean\u00a0Luc",
    "D'Angelo",
    "  Kim ",
    "Siobhán",
    "🙂",
]
LAST_NAMES = ["Mason", "Müller", "O'Brien", "van der Berg", "王", "López García", 'Said "the Great"', "Back\\slash", ""]
EMAIL_LOCALS = ["sarah.mason", "o'brien", "anne-marie+news", "jose.lopez", "li_wei", "m.al-sayed", "kim"]
EMAIL_DOMAINS = ["example.com", "gmail.com", "yahoo.co.jp", "xn--bcher-kva.example", "mail.example.org"]
# Distinct prefixes, none the start of another, and the index in the digits: no two profiles share a number.
PHONE_FORMATS = ["+1555{:07d}", "+336{:08d}", "+8190{:08d}", "+447700{:06d}"]
EXTERNAL_ID_FORMATS = ["POS-{:06d}", "shopify:{}", "ext_{}_ü"]
ORGANIZATIONS = ["Example Corporation", "Boutique Éclair", "株式会社サンプル", 'ACME "Widgets" Inc.', "Back\\slash Co"]
TITLES = ["Regional Manager", "Directrice générale", "店長", "VP, Growth 🚀", "Chief\tTab Officer"]
LOCALES = ["en-US", "fr-CA", "ja-JP", "de-DE", "ar-SA", "he-IL", "pt-BR"]
IMAGES = ["https://images.example/p/zoë.jpg", "https://cdn.shop.example/a%20b.png"]
LOCATIONS: list[dict[str, Any]] = [
    {
        "address1": "89 E 42nd St",
        "address2": "1st floor",
        "city": "New York",
        "country": "United States",
        "latitude": 40.7128,
        "longitude": -74.006,
        "region": "NY",
        "zip": "10017",
        "timezone": "America/New_York",
        "ip": "127.0.0.1",
    },
    {
        "address1": "12 Rue de l'Église",
        "address2": None,
        "city": "Montréal",
        "country": "Canada",
        "latitude": "45.5017",  # the spec allows a string or a number
        "longitude": "-73.5673",
        "region": "QC",
        "zip": "H2X 1Y4",
        "timezone": "America/Toronto",
        "ip": "2001:db8::1",
    },
    {
        "address1": "千代田区千代田1-1",
        "address2": None,
        "city": "東京",
        "country": "日本",
        "latitude": 35.6895,
        "longitude": 139.6917,
        "region": None,
        "zip": "100-0001",
        "timezone": "Asia/Tokyo",
        "ip": None,
    },
    {"ip": "203.0.113.7", "timezone": "Europe/Paris"},  # located from an IP alone: the other keys are missing
    {k: None for k in ("address1", "address2", "city", "country", "latitude", "longitude", "region", "zip")},
]
# Custom properties, each profile holding some of them: keys come and go, values of every JSON type.
PROFILE_PROPERTIES: list[tuple[str, Any]] = [
    ("Couleur préférée 🎨", "Bleu 💙"),
    ("Loyalty Tier", "Gold"),
    ("Points", 1234),
    ("VIP", True),
    ("Accepts Marketing", False),
    ("Birthday", "1990-02-28"),
    ("Tags", ["été", "vip", ""]),
    ("Nested", {"deep": {"list": [1, 2.5, None], "empty": {}}}),
    ("$source", "Shopify"),
    ("Note\tTab", 'line1\nline2 "quoted" \\ back'),
    ("Nothing", None),
]
# How consent was given (free strings in the spec; PREFERENCE_PAGE and TEXT are its examples).
EMAIL_METHODS = ["PREFERENCE_PAGE", "FORM", "API", "BULK_IMPORT", "SHOPIFY"]
SMS_METHODS = ["TEXT", "FORM", "API", "CHECKOUT"]
METHOD_DETAILS = ["", "mydomain.com/signup", None, "Formulaire «Été» 🌞"]
